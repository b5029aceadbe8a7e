"""Readmission-risk scores computed from the encounter: Charlson and LACE.

Charlson: Quan et al., Med Care 2005;43:1130-9 (ICD-10 coding), Charlson 1987 weights; the
table lives in rulesets/reference/charlson_quan2005.csv. LACE: van Walraven et al., CMAJ
2010;182:551-7: Length of stay, Acuity of admission, Comorbidity (Charlson), ED visits in
the previous 6 months; 0-19, high risk at 10 or more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.rules.reference import CharlsonCondition


def charlson(codes: Iterable[str], table: tuple[CharlsonCondition, ...]) -> tuple[int, list[str]]:
    """The Charlson index and the conditions found; severe forms replace their mild ones."""
    codes = list(codes)
    found = {c.name: c for c in table if any(c.codes.matches(code) for code in codes)}
    for cond in list(found.values()):
        if cond.supersedes and cond.supersedes in found:
            del found[cond.supersedes]
    return sum(c.weight for c in found.values()), sorted(found)


@dataclass(frozen=True)
class Lace:
    l: int  # noqa: E741 - the score's own letter
    a: int
    c: int
    e: int

    @property
    def total(self) -> int:
        return self.l + self.a + self.c + self.e


def lace(los_days: int, acute: bool, charlson_index: int, ed_visits_6m: int) -> Lace:
    if los_days < 1:
        l_points = 0
    elif los_days <= 3:
        l_points = los_days
    elif los_days <= 6:
        l_points = 4
    elif los_days <= 13:
        l_points = 5
    else:
        l_points = 7
    return Lace(
        l=l_points,
        a=3 if acute else 0,
        c=charlson_index if charlson_index <= 3 else 5,
        e=min(ed_visits_6m, 4),
    )
