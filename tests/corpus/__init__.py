"""The conformance corpus: HL7 v2 messages and FHIR Bundles in the shapes real senders use,
each with its expected outcome (hl7/expected.yaml, fhir/expected.yaml)."""
