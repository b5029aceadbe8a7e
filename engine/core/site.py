"""Site profile: one hospital's HL7 dialect mapped onto the engine's vocabulary."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeGuard, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.core import identity
from engine.core.errors import ConfigurationError
from engine.core.identity import MrnAuthority, MrnFallback

CareStatus = Literal["inpatient", "observation", "emergency", "outpatient", "preadmit"]
ProcessingId = Literal["P", "T", "D"]  # HL7 table 0103
PayerClass = Literal[
    "medicare", "medicare_advantage", "medicaid", "commercial", "self_pay", "other"
]


class SiteProfileError(ConfigurationError, ValueError):
    """The site profile file is missing or invalid."""


class CareStatusRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_class: str | None = None
    patient_type: str | None = None
    status: CareStatus

    def matches(self, patient_class: str | None, patient_type: str | None) -> bool:
        if self.patient_class is not None and self.patient_class != patient_class:
            return False
        return self.patient_type is None or self.patient_type == patient_type


def _is_payer_class(value: str) -> TypeGuard[PayerClass]:
    """A payer class as sent (any text) narrowed to the profile's vocabulary."""
    return value in get_args(PayerClass)


def _production_only() -> list[ProcessingId]:
    return ["P"]


def _default_review_days() -> dict[PayerClass, float]:
    return {"medicare": 3, "medicare_advantage": 1, "medicaid": 2, "commercial": 1,
            "self_pay": 3, "other": 2}


class SiteProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    timezone: str
    receiving_application: str = "DCPLAN"
    receiving_facility: str = ""
    # MSH-5 names the interface engine gave us, when the site wants others refused (AR);
    # None (the default): any receiver is accepted.
    accepted_receiving_applications: list[str] | None = None
    # MSH-11 processing ids applied to live state: P production; T training and D debugging
    # feeds are refused (AR) unless a test engine lists them here.
    accepted_processing_ids: list[ProcessingId] = Field(
        default_factory=_production_only, min_length=1,
        description="MSH-11 processing ids this engine applies (P, T, D).")
    # MRN authorities in order of preference (one mapping is read as a list of one).
    mrn: list[MrnAuthority] = Field(min_length=1)
    # No listed authority in PID-3: `first` applies the first MR (else first) identifier
    # and records a warning; `refuse` answers AE.
    mrn_fallback: MrnFallback = "first"
    visit_number_authority: str = ""
    care_status: list[CareStatusRule] = Field(min_length=1)
    payers: dict[str, PayerClass] = Field(default_factory=dict)
    icu_units: list[str] = Field(default_factory=lambda: ["ICU"],
                                 description="Units counted as intensive care.")
    default_payer_class: PayerClass = "other"
    # Days between continued-stay UR reviews by payer class (the hospital's UR plan, 42 CFR
    # 482.30(d): schedules may differ by class of case). Defaults, not regulation: Medicare
    # every 3 days; plans that authorize days concurrently (Medicare Advantage, commercial)
    # daily; Medicaid every 2 days; self-pay every 3; anything else every 2.
    ur_review_days: dict[PayerClass, float] = Field(
        default_factory=_default_review_days,
        description="Days between continued-stay reviews, by payer class.")

    @field_validator("mrn", mode="before")
    @classmethod
    def _mrn_list(cls, value: object) -> object:
        if isinstance(value, dict):  # the single mapping of the first profiles: type MR
            return [{"identifier_type": "MR", **value}]
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def default_id_system(self) -> str:
        """The system of an identifier that names no authority: the first MRN authority's."""
        return self.mrn[0].canonical or identity.UNNAMED_AUTHORITY

    @property
    def visit_system(self) -> str:
        """The system of a visit number that names no authority."""
        return identity.canonical_system(self.visit_number_authority)

    def id_system(self, namespace: str, universal_id: str = "", universal_type: str = "") -> str:
        """The stored system of an HL7 assigning authority (CX-4), listed or not."""
        return identity.canonical_system(namespace, universal_id, universal_type, self.mrn)

    def fhir_id_system(self, system: str | None, assigner: str | None = None) -> str | None:
        """The stored system of a FHIR Identifier.system (and assigner.display)."""
        return identity.fhir_system(system, assigner, self.mrn)

    def namespace_of(self, system: str, sent: str | None = None) -> str | None:
        """The namespace to keep beside a stored system (searchable as written): the one
        sent, else the listed authority's; None when it is the system itself."""
        name = sent or next((a.namespace for a in self.mrn if a.canonical == system), None)
        return name if name and name != system else None

    def mrn_rank(self, system: str, type_code: str | None) -> int | None:
        """The preference of an identifier as an MRN (0 best), None when it is not one."""
        for rank, authority in enumerate(self.mrn):
            if system != authority.canonical:
                continue
            wanted = authority.identifier_type
            if wanted is None or type_code is None or type_code.upper() == wanted.upper():
                return rank
        return None

    def status_for(self, patient_class: str | None, patient_type: str | None) -> CareStatus | None:
        for rule in self.care_status:
            if rule.matches(patient_class, patient_type):
                return rule.status
        return None

    def payer_class_for(self, plan_code: str | None) -> PayerClass | None:
        if not plan_code:
            return None
        return self.payers.get(plan_code, self.default_payer_class)

    def review_interval_days(self, payer_class: str | None) -> float | None:
        """The continued-stay review cadence for a payer class (the default class if none)."""
        key = payer_class or self.default_payer_class
        return self.ur_review_days.get(key) if _is_payer_class(key) else None

    def accepts_processing_id(self, processing_id: str) -> bool:
        return processing_id in self.accepted_processing_ids

    def accepts_receiver(self, application: str) -> bool:
        allowed = self.accepted_receiving_applications
        return allowed is None or application in allowed


def load_site_profile(path: Path) -> SiteProfile:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SiteProfileError(f"site profile not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise SiteProfileError(f"site profile {path} is not valid YAML: {exc}") from exc
    try:
        return SiteProfile.model_validate(data)
    except ValueError as exc:
        first = str(exc).splitlines()
        raise SiteProfileError(f"site profile {path} is invalid: {' '.join(first[:3])}") from exc


@lru_cache(maxsize=8)
def cached_site_profile(path: str) -> SiteProfile:
    return load_site_profile(Path(path))
