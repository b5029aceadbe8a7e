"""FHIR search: query parameters -> SQL conditions, keyset paging, searchset Bundles.

By job: `params` (what a parameter is and how its values become conditions: dates and
their prefixes, references, strings and modifiers, tokens), `asked` (a GET or POST
`_search` request's parameters), `query` (them read into a Query, leniently unless
`Prefer: handling=strict`), `sql` (the statements), `paging` (a page, its total and
cursors), `searchset` (the Bundle, its links and response), `registry` (which types are
searchable by what, built with the router). The names below are the ones the endpoints
use.
"""

from engine.api.fhir.search.asked import Asked, asked
from engine.api.fhir.search.paging import Page, run
from engine.api.fhir.search.params import (
    MAX_ROW_ID,
    Build,
    Param,
    by_id,
    choice,
    date_range,
    instant,
    period,
    reference,
    row_id,
    string,
    token,
    unused_code,
)
from engine.api.fhir.search.query import Query, parse
from engine.api.fhir.search.registry import Searchable, SearchRegistry
from engine.api.fhir.search.searchset import bundle, respond

__all__ = [
    "MAX_ROW_ID", "Asked", "Build", "Page", "Param", "Query", "SearchRegistry", "Searchable",
    "asked", "bundle", "by_id", "choice", "date_range", "instant", "parse", "period",
    "reference", "respond", "row_id", "run", "string", "token", "unused_code",
]
