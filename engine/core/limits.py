"""How long each kept value may be: the store's column widths, in one place.

The HL7 and FHIR mappings cut free text to fit and refuse identifiers that do not, before
anything reaches the database (a value too long for its column would fail its insert on
every retry); the storage models declare their columns with the same numbers.
"""

from __future__ import annotations

CONTROL_ID = 200  # inbound message: MSH-10
SENDER = 200  # inbound message: "application|facility"
ID_VALUE = 100  # patient identifier value, visit number
ID_SYSTEM = 100  # identifier system (assigning authority), visit system
ID_TYPE = 20  # identifier type code (MR, PI, ...)
NAME = 200  # family and given names
SEX = 10
PLACE = 50  # unit (point of care)
PATIENT_CLASS = 10
PATIENT_TYPE = 20
ATTENDING_ID = 50
ATTENDING_NAME = 200
SERVICE = 50  # hospital service
SHORT_CODE = 10  # admission type, admit source, discharge disposition
DX_CODE = 20
DX_SYSTEM = 20
DX_TYPE = 5
DX_TEXT = 300
DRG = 20
DRG_TEXT = 200
PLAN = 50  # insurance plan code
PAYER = 200  # payer name
AUTH = 100  # authorization number
