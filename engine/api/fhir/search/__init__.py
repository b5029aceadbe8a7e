"""FHIR search: query parameters -> SQL conditions, keyset paging, searchset Bundles.

By job: `params` (what a parameter is and how its values become conditions: dates and
their prefixes, references, strings and modifiers, tokens), `query` (the query string read
strictly into a Query), `sql` (the statements), `paging` (a page, its total and cursors),
`searchset` (the Bundle and its links), `registry` (which types are searchable by
what, built with the router). The names below are the ones the endpoints use.
"""

from engine.api.fhir.search.paging import Page, run
from engine.api.fhir.search.params import (
    MAX_ROW_ID,
    Build,
    Param,
    by_id,
    choice,
    date_range,
    period,
    reference,
    row_id,
    string,
    token,
)
from engine.api.fhir.search.query import Query, parse
from engine.api.fhir.search.registry import Searchable, SearchRegistry
from engine.api.fhir.search.searchset import bundle

__all__ = [
    "MAX_ROW_ID", "Build", "Page", "Param", "Query", "SearchRegistry", "Searchable", "bundle",
    "by_id", "choice", "date_range", "parse", "period", "reference", "row_id", "run",
    "string", "token",
]
