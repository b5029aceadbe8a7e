"""FHIR R4 value sets of the coded search parameters this server serves.

A search for a code of the value set that the engine never keeps (a Task `requested`, an
Encounter `unknown`) is a valid question with no answer: it matches nothing. A code outside
the value set is a typo and is refused. Codes from https://hl7.org/fhir/R4/valueset-*.html.
"""

from __future__ import annotations

TASK_STATUS = ("draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
               "in-progress", "on-hold", "failed", "completed", "entered-in-error")
REQUEST_PRIORITY = ("routine", "urgent", "asap", "stat")
FLAG_STATUS = ("active", "inactive", "entered-in-error")
# RiskAssessment.status is bound to ObservationStatus
OBSERVATION_STATUS = ("registered", "preliminary", "final", "amended", "corrected",
                      "cancelled", "entered-in-error", "unknown")
REQUEST_STATUS = ("draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                  "unknown")
ENCOUNTER_STATUS = ("planned", "arrived", "triaged", "in-progress", "onleave", "finished",
                    "cancelled", "entered-in-error", "unknown")
# Encounter.class: v3 ActEncounterCode (extensible)
ENCOUNTER_CLASS = ("AMB", "EMER", "FLD", "HH", "IMP", "ACUTE", "NONAC", "OBSENC", "PRENC",
                   "SS", "VR")
