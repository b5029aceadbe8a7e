"""Kept for branches still importing it: the builder is engine.hl7.build (import it there)."""

from engine.hl7.build import adt, merge, oru

__all__ = ["adt", "merge", "oru"]
