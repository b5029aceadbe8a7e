"""How long each kept value may be: the store's column widths, in one place.

Liberal in what is accepted, exact in what is kept. The widths are generous (real feeds send
54-character locations, 60-character plan codes, 120-character identifiers), so values are
kept whole. Beyond a width the HL7 and FHIR mappings cut descriptive and coded values and
record a warning on the inbound row (`engine hl7 warnings`); only the keys the engine cannot
do without (MRN, visit number, MSH-10) refuse the message beyond their bound, since a cut key
would name another patient or stay. The storage models declare their columns with these
numbers, so a value that reaches the store always fits.
"""

from __future__ import annotations

CONTROL_ID = 200  # inbound message: MSH-10 (ST(199) from 2.6)
SENDER = 200  # inbound message: "application|facility"
KEY = 250  # identifier value and system (MRN, visit number, other PID-3 repetitions)
ID_VALUE = KEY
ID_SYSTEM = KEY
ID_TYPE = 50  # identifier type code (MR, PI, ...)
CODE = 250  # a coded or short descriptive value a rule may read: kept whole up to this
NAME = 250  # family, given and middle names
SEX = 20
PLACE = CODE  # facility, unit (point of care), room, bed
PATIENT_CLASS = CODE
PATIENT_TYPE = CODE
ATTENDING_ID = CODE
ATTENDING_NAME = CODE
SERVICE = CODE  # hospital service
SHORT_CODE = CODE  # admission type, admit source, disposition
DX_CODE = 100
DX_SYSTEM = 100
DX_TYPE = 20
DX_TEXT = 1000
DRG = 50
DRG_TEXT = 250
PLAN = CODE  # insurance plan code
PAYER = CODE  # payer name
AUTH = CODE  # authorization number
