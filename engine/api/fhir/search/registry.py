"""What each resource type can be searched by: built once with the FHIR router and handed
to the search code and the CapabilityStatement, so the statement describes what runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement

from engine.api.fhir.search.params import Param


@dataclass(frozen=True, slots=True)
class Searchable:
    """One resource type's search: its table, parameters, sort keys and includes.

    `sorts` None: `_sort` and `_include` are not result parameters of this type (they are
    refused as unknown parameters); a dict, even empty: they are, refused with the keys and
    includes the type has.
    """

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
            includes: tuple[str, ...] = ()) -> None:
        """Make a resource type searchable: its table, parameters, sort keys and includes."""
        if resource in self._types:
            raise ValueError(f"{resource} is already searchable")
        self._types[resource] = Searchable(model, dict(params), base,
                                           None if sorts is None else dict(sorts), includes)

    def __getitem__(self, resource: str) -> Searchable:
        return self._types[resource]

    def params(self, resource: str) -> dict[str, Param]:
        """The parameters of a type; none for a type that cannot be searched."""
        found = self._types.get(resource)
        return found.params if found is not None else {}
