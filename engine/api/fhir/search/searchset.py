"""The searchset Bundle of one page: self/first/previous/next links, the matches, and the
resources `_include` brought along."""

from __future__ import annotations

from urllib.parse import urlencode

from engine.api.fhir.search.paging import Page
from engine.api.fhir.search.query import Query


def bundle(query: Query, page: Page, base: str, entries: list[dict],
           included: list[dict] | None = None) -> dict:
    """A searchset Bundle with self/first/previous/next links; `base` is the /fhir URL;
    `included` resources (from _include) follow the matches."""
    url = f"{base}/{query.resource}"

    def link(relation: str, cursor: str | None) -> dict:
        items = [*query.params, ("_count", str(query.count))]
        if cursor:
            items.append(("_cursor", cursor))
        return {"relation": relation, "url": f"{url}?{urlencode(items)}"}

    cursor = f"{query.cursor[0]}{query.cursor[1]}" if query.cursor else None
    links = [link("self", cursor), link("first", None)]
    if page.previous:
        links.append(link("previous", page.previous))
    if page.next:
        links.append(link("next", page.next))
    out: dict = {"resourceType": "Bundle", "type": "searchset"}
    if page.total is not None:
        out["total"] = page.total
    out["link"] = links
    found = [{"fullUrl": f"{url}/{e['id']}", "resource": e, "search": {"mode": "match"}}
             for e in entries]
    found += [{"fullUrl": f"{base}/{e['resourceType']}/{e['id']}", "resource": e,
               "search": {"mode": "include"}} for e in included or ()]
    if found:  # FHIR JSON has no empty arrays
        out["entry"] = found
    return out
