"""A write's conditions (FHIR R4 http.html): If-Match on update, If-None-Exist on create.

Both are checked inside the write's own transaction, under the locks of what it touches
(engine.intake.path Precondition), so two clients cannot both pass the same check:

* `If-Match: W/"3"` (or `"3"`, or `3`): the update applies only while the resource is at
  that version; otherwise 412 (StaleVersion) and nothing changes.
* `If-None-Exist: identifier=sys|value` (a search, as after the `?`): no match creates as a
  create does; one match applies nothing and answers that resource, 200; more than one is
  412 (Ambiguous). The condition is read strictly (an unknown parameter is a 400): a
  filter ignored here would make a create land on, or be refused by, the wrong record.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.fhir import search
from engine.api.fhir.search import SearchRegistry
from engine.core.errors import Ambiguous, Malformed, StaleVersion
from engine.core.site import SiteProfile
from engine.storage.models import Encounter


def if_match(header: str | None) -> int | None:
    """The version an If-Match names (None when absent); Malformed when it names none."""
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip().strip('"')
    if not text.isdigit():
        raise Malformed(f"If-Match {header!r}: send the ETag you read, like W/\"3\"")
    return int(text)


@dataclass(slots=True)
class CurrentVersion:
    """If-Match on an Encounter update: refuse unless the encounter is at `expected`."""

    encounter_id: int
    expected: int

    def __call__(self, session: Session) -> str | None:
        row = session.get(Encounter, self.encounter_id)
        if row is not None and row.version != self.expected:
            raise StaleVersion(f"Encounter/{row.id} is at version {row.version}, not "
                               f"{self.expected}: read it again and retry")
        return None


@dataclass(slots=True)
class NoneExist:
    """If-None-Exist on an Encounter create; `matched` is the id on file after one match."""

    condition: search.Query
    text: str
    matched: int | None = None

    def __call__(self, session: Session) -> str | None:
        found = session.scalars(select(Encounter.id).where(*self.condition.conditions)
                                .order_by(Encounter.id).limit(2)).all()
        if len(found) > 1:
            raise Ambiguous(f"If-None-Exist {self.text!r} matches more than one Encounter: "
                            "make the condition name one (identifier=<system>|<visit>)")
        if not found:
            return None
        self.matched = found[0]
        return f"If-None-Exist {self.text!r} matched Encounter/{found[0]}: nothing changed"


def none_exist(registry: SearchRegistry, resource: str, header: str,
               site: SiteProfile) -> NoneExist:
    """The If-None-Exist search of a create (`[type]?` may prefix it); InvalidInput (400)
    when it names no filter or one this server cannot evaluate."""
    text = header.strip()
    text = text.partition("?")[2] if "?" in text else text
    items = parse_qsl(text, keep_blank_values=True)
    query = search.parse(registry, resource, items, site.zone, strict=True)
    if not query.params:
        raise Malformed(f"If-None-Exist {header!r} names no search parameter: send one "
                        "like identifier=<system>|<visit number>")
    return NoneExist(query, text)
