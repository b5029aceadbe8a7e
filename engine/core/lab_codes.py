"""The lab tests the scores read (HOSPITAL: hemoglobin and sodium) and their units.

Both protocol mappings (HL7 OBX, FHIR Observation) turn a result into the engine's unit here,
so a unit understood by one door is understood by the other.
"""

from __future__ import annotations

from engine.core.events import EventError

# LOINC code -> (name the facts use, the engine's unit).
LOINC: dict[str, tuple[str, str]] = {
    "718-7": ("hemoglobin", "g/dL"),  # Hemoglobin [Mass/volume] in Blood
    "2951-2": ("sodium", "mmol/L"),  # Sodium [Moles/volume] in Serum or Plasma
}
# Units accepted per test (lower case, UCUM or common) and the factor to the engine's unit.
_FACTORS: dict[str, dict[str, float]] = {
    "hemoglobin": {"g/dl": 1.0, "gm/dl": 1.0, "g/l": 0.1},
    "sodium": {"mmol/l": 1.0, "meq/l": 1.0},
}
# Statuses that withdraw a result sent before (HL7 OBX-11 D/W, FHIR entered-in-error).
WITHDRAWN = frozenset({"D", "W", "entered-in-error", "cancelled"})
# Statuses that carry no value to keep (HL7 X: cannot be obtained).
NO_RESULT = frozenset({"X"})


def reading(code: str, value: float, unit: str | None, where: str) -> tuple[str, float, str]:
    """(name, value, unit) in the engine's unit for a known LOINC code; raises EventError."""
    name, engine_unit = LOINC[code]
    factor = _FACTORS[name].get((unit or "").strip().lower())
    if factor is None:
        accepted = ", ".join(sorted(_FACTORS[name]))
        raise EventError(f"{where}: unit {unit or '(none)'!r} for {name} (LOINC {code}) is not "
                         f"understood; send one of {accepted}")
    return name, round(value * factor, 4), engine_unit
