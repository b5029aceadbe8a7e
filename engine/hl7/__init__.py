"""HL7 v2: MLLP transport, a fast ER7 reader, ACKs, and ADT event semantics."""
