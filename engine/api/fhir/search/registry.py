"""What each resource type can be searched by: built once with the FHIR router and handed
to the search code and the CapabilityStatement, so the statement describes what runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement

from engine.api.fhir.search.params import Param, instant

LAST_UPDATED = "_lastUpdated"


@dataclass(frozen=True, slots=True)
class Searchable:
    """One resource type's search: its table, parameters, sort keys and includes."""

    model: Any
    params: dict[str, Param]
    base: ColumnElement[bool] | None = None  # a condition every search of the type has
    sorts: dict[str, Any] | None = None  # _sort name -> SQL expression
    includes: tuple[str, ...] = ()  # _include values it serves


class SearchRegistry:
    """The searchable resource types by name."""

    def __init__(self) -> None:
        self._types: dict[str, Searchable] = {}

    def add(self, resource: str, model: Any, params: dict[str, Param], *,
            base: ColumnElement[bool] | None = None, sorts: dict[str, Any] | None = None,
            includes: tuple[str, ...] = (), updated: Any = None) -> None:
        """Make a resource type searchable: its table, parameters, sort keys and includes.

        Every type is searchable and sortable by `_lastUpdated` (an EHR polls for changes
        with `_lastUpdated=gt<last seen>&_sort=_lastUpdated`), on `updated` (the model's
        updated_at unless given): the instant its meta.lastUpdated shows."""
        if resource in self._types:
            raise ValueError(f"{resource} is already searchable")
        column = model.updated_at if updated is None else updated
        polled = Param(LAST_UPDATED, "date", "When the resource last changed (meta."
                       "lastUpdated), with prefixes eq ne gt ge lt le sa eb; sort by it with "
                       "_sort=_lastUpdated", instant(column, LAST_UPDATED))
        self._types[resource] = Searchable(
            model, {**params, LAST_UPDATED: polled}, base,
            {**(sorts or {}), LAST_UPDATED: column}, includes)

    def __getitem__(self, resource: str) -> Searchable:
        return self._types[resource]

    def __contains__(self, resource: object) -> bool:
        return resource in self._types

    def params(self, resource: str) -> dict[str, Param]:
        """The parameters of a type; none for a type that cannot be searched."""
        found = self._types.get(resource)
        return found.params if found is not None else {}
