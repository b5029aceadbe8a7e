"""Patient identity as hospitals describe it: assigning authorities and canonical systems.

An HL7 assigning authority (CX-4, an HD) is a namespace id, a universal id (an OID when its
type is ISO), or both; FHIR names the same authority by a system URI. Every identifier is
stored under one canonical system, so a patient is one identity whichever door and spelling
the sender used:

* an authority the site profile lists: its canonical system (`urn:oid:<OID>` when it has an
  OID, else its FHIR system, else its namespace), matched on the namespace OR the OID;
* any other authority: `urn:oid:<OID>` for an OID, a URI universal id as sent, else the
  namespace (`GENHOSP`, published in FHIR as `urn:engine:id:GENHOSP`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

OID_PREFIX = "urn:oid:"
# A bare namespace is published in FHIR under this prefix (FHIR wants an absolute URI).
NAMESPACE_PREFIX = "urn:engine:id:"
_OID = re.compile(r"[0-2](\.[0-9]+)+\Z")
_URI_TYPES = frozenset({"URI", "URL", "HL7"})
# The system of an identifier that names no authority at all, when the site lists none.
UNNAMED_AUTHORITY = "UNKNOWN"

MrnFallback = Literal["first", "refuse"]


def is_oid(text: str) -> bool:
    return bool(_OID.match(text))


def bare_oid(text: str) -> str | None:
    """The OID `text` names (`2.16.840.1`, or `urn:oid:2.16.840.1`), else None."""
    text = text.strip()
    if text[:8].lower() == OID_PREFIX:
        text = text[8:]
    return text if is_oid(text) else None


class MrnAuthority(BaseModel):
    """One assigning authority whose identifiers are MRNs, as a site names it."""

    model_config = ConfigDict(extra="forbid")
    namespace: str | None = None  # CX-4.1 namespace id
    oid: str | None = None  # CX-4.2 universal id of type ISO (`&2.16.840.1...&ISO`)
    system: str | None = None  # a FHIR system URI a sender uses for it
    identifier_type: str | None = None  # CX-5 required; None: any type (MR preferred)
    assigning_authority: str | None = None  # the first profiles' spelling: namespace or OID

    @model_validator(mode="after")
    def _normalise(self) -> MrnAuthority:
        if self.assigning_authority:
            oid = bare_oid(self.assigning_authority)
            if oid and not self.oid:
                self.oid = oid
            elif not oid and not self.namespace:
                self.namespace = self.assigning_authority
        if self.oid is not None:
            oid = bare_oid(self.oid)
            if oid is None:
                raise ValueError(f"oid {self.oid!r} is not an OID (digits and dots)")
            self.oid = oid
        if not (self.namespace or self.oid or self.system):
            raise ValueError("an MRN authority needs a namespace, an oid or a system")
        return self

    @property
    def canonical(self) -> str:
        """The system its identifiers are stored under."""
        if self.oid:
            return OID_PREFIX + self.oid
        return self.system or self.namespace or ""

    @property
    def label(self) -> str:
        return " / ".join(x for x in (self.namespace, self.oid, self.system) if x)

    def matches(self, namespace: str, universal_id: str) -> bool:
        """Named by its namespace, its OID (with or without `urn:oid:`) or its system."""
        if namespace and self.namespace and namespace.casefold() == self.namespace.casefold():
            return True
        for text in (universal_id, namespace):
            if not text:
                continue
            if self.oid and bare_oid(text) == self.oid:
                return True
            if self.system and text == self.system:
                return True
        return False


def canonical_system(namespace: str, universal_id: str = "", universal_type: str = "",
                     authorities: Sequence[MrnAuthority] = ()) -> str:
    """The stored system of an authority as an HL7 HD (namespace&universal id&type)."""
    for authority in authorities:
        if authority.matches(namespace, universal_id):
            return authority.canonical
    if universal_id:
        oid = bare_oid(universal_id)
        if oid and universal_type.upper() in ("", "ISO"):
            return OID_PREFIX + oid
        if universal_type.upper() in _URI_TYPES or (":" in universal_id and not namespace):
            return universal_id
    if namespace:
        oid = bare_oid(namespace)  # some feeds put the OID in the namespace
        return OID_PREFIX + oid if oid else namespace
    return universal_id


def fhir_system(system: str | None, assigner: str | None,
                authorities: Sequence[MrnAuthority] = ()) -> str | None:
    """The stored system of a FHIR identifier: `urn:oid:`, `urn:engine:id:<namespace>`, a
    bare OID or namespace, any other URI as sent, or only `assigner.display`."""
    if system:
        if system.startswith(NAMESPACE_PREFIX):
            return canonical_system(system[len(NAMESPACE_PREFIX):], "", "", authorities)
        if bare_oid(system):
            return canonical_system("", system, "ISO", authorities)
        if ":" in system:  # a URI: an authority listed by that system, else as sent
            return next((a.canonical for a in authorities if a.system == system), system)
        return canonical_system(system, "", "", authorities)
    if assigner:
        return canonical_system(assigner, "", "", authorities)
    return None


def published_system(stored: str) -> str:
    """The FHIR Identifier.system of a stored system."""
    if not stored or ":" in stored:
        return stored
    oid = bare_oid(stored)  # rows kept before OIDs were stored as urn:oid:
    return OID_PREFIX + oid if oid else NAMESPACE_PREFIX + stored


def search_systems(system: str, authorities: Sequence[MrnAuthority] = ()) -> set[str]:
    """Every stored system a searched system may mean: its canonical form, the stored form
    and the raw namespace (a search is liberal: `urn:oid:X`, `X`, `urn:engine:id:NS`, `NS`)."""
    out = {system}
    if (found := fhir_system(system, None, authorities)) is not None:
        out.add(found)
    if system.startswith(NAMESPACE_PREFIX):
        out.add(system[len(NAMESPACE_PREFIX):])
    if oid := bare_oid(system):
        out |= {oid, OID_PREFIX + oid}
    return out


def first_of_type(types: Iterable[str | None], wanted: str) -> int | None:
    """The index of the first identifier type equal to `wanted` (any case), else None."""
    return next((i for i, t in enumerate(types) if (t or "").upper() == wanted.upper()), None)
