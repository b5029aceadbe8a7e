"""Readmission-risk scores computed from the encounter: Charlson and LACE.

Charlson: Quan et al., Med Care 2005;43:1130-9 (ICD-10 coding), Charlson 1987 weights; the
table lives in rulesets/reference/charlson_quan2005.csv. LACE: van Walraven et al., CMAJ
2010;182:551-7: Length of stay, Acuity of admission, Comorbidity (Charlson), ED visits in
the previous 6 months; 0-19, high risk at 10 or more.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.rules.reference import CharlsonCondition, normalise_code

# Charlson tables indexed by prefix, keyed by the table's identity (a few at most: one per
# loaded reference version; older ones are dropped).
_CHARLSON_INDEX: dict[int, tuple[tuple[CharlsonCondition, ...], dict[str, tuple[int, ...]],
                                 tuple[int, ...]]] = {}


def _charlson_index(table: tuple[CharlsonCondition, ...]
                    ) -> tuple[dict[str, tuple[int, ...]], tuple[int, ...]]:
    """Prefix -> positions of the conditions listing it, and the prefix lengths in use."""
    entry = _CHARLSON_INDEX.get(id(table))
    if entry is None or entry[0] is not table:
        by_prefix: dict[str, list[int]] = {}
        for i, cond in enumerate(table):
            for prefix in cond.codes.prefixes:
                by_prefix.setdefault(prefix, []).append(i)
        entry = (table, {p: tuple(v) for p, v in by_prefix.items()},
                 tuple(sorted({len(p) for p in by_prefix})))
        while len(_CHARLSON_INDEX) >= 4:
            del _CHARLSON_INDEX[next(iter(_CHARLSON_INDEX))]
        _CHARLSON_INDEX[id(table)] = entry
    return entry[1], entry[2]


def charlson(codes: Iterable[str], table: tuple[CharlsonCondition, ...]
             ) -> tuple[int, list[str]]:
    """The Charlson index and the conditions found; severe forms replace their mild ones.

    Each code's prefixes (of the lengths the table uses) are looked up in an index rather
    than testing every prefix of the table against every code: it was most of derive's time.
    """
    index, lengths = _charlson_index(table)
    hit: set[int] = set()
    for code in codes:
        code = normalise_code(code)
        for k in lengths:
            if k > len(code):
                break
            found = index.get(code[:k])
            if found is not None:
                hit.update(found)
    conditions = {table[i].name: table[i] for i in sorted(hit)}
    for cond in list(conditions.values()):
        if cond.supersedes and cond.supersedes in conditions:
            del conditions[cond.supersedes]
    return sum(c.weight for c in conditions.values()), sorted(conditions)



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


@dataclass(frozen=True)
class Hospital:
    """HOSPITAL score parts (Donzé J et al. JAMA Intern Med 2013;173(8):632-638)."""

    hemoglobin: int
    oncology: int
    sodium: int
    procedure: int
    index_type: int
    admissions: int
    length_of_stay: int

    @property
    def total(self) -> int:
        return (self.hemoglobin + self.oncology + self.sodium + self.procedure
                + self.index_type + self.admissions + self.length_of_stay)


def hospital(hemoglobin_g_dl: float, oncology_discharge: bool, sodium_mmol_l: float,
             procedure: bool, urgent_admission: bool, admissions_12m: int,
             los_days: int) -> Hospital:
    """0-13; 7 or more is high risk of potentially avoidable 30-day readmission."""
    if admissions_12m <= 1:
        admissions = 0
    elif admissions_12m <= 5:
        admissions = 2
    else:
        admissions = 5
    return Hospital(
        hemoglobin=1 if hemoglobin_g_dl < 12 else 0,
        oncology=2 if oncology_discharge else 0,
        sodium=1 if sodium_mmol_l < 135 else 0,
        procedure=1 if procedure else 0,
        index_type=1 if urgent_admission else 0,
        admissions=admissions,
        length_of_stay=2 if los_days >= 5 else 0,
    )
