"""GET /metrics: the department's numbers as pictures, for supervisors and directors
(metrics:read). Filters (unit, service, payer, period) kept as typed; for each metric its
chart, its definition and the table behind the chart; /metrics/<metric>.csv exports that
table with the same filters. Aggregates only: the page names no patient."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.auth import require_page
from engine.api.deps import Now, RuntimeDep
from engine.api.runtime import Runtime
from engine.api.security.audit import note
from engine.api.web import charts, display
from engine.api.web.render import page
from engine.core.config import DEFAULT_RULESETS
from engine.core.roles import Permission, Principal
from engine.core.site import PayerClass
from engine.reporting.catalogue import BY_KEY, METRICS, compute_all
from engine.reporting.scope import GRAINS, Asked, read
from engine.reporting.table import Context, Metric, Table
from engine.rules.reference import DrgNorm, load_reference
from engine.storage.models import Encounter

router = APIRouter()
MetricsReader = Annotated[Principal, Depends(require_page(Permission.METRICS_READ))]


@dataclass(frozen=True)
class Shown:
    metric: Metric
    table: Table
    chart: Markup | None
    csv_href: str


@lru_cache(maxsize=4)
def _reference_drgs(folder: Path) -> dict[str, DrgNorm]:
    return load_reference(folder).drgs


def _drgs(runtime: Runtime) -> dict[str, DrgNorm]:
    """The DRG norms of the rulebook in force; with rules off, those of the rulesets folder
    (or the engine's own): the LOS metrics need the norms, not the rules."""
    book = runtime.rules.current
    if book is not None:
        return book.book.reference.drgs
    return _reference_drgs((runtime.settings.rulesets or DEFAULT_RULESETS) / "reference")


def _choices(session: Session) -> dict[str, list[tuple[str, str]]]:
    """What the filters offer: the units, services and plans stays have (one DISTINCT over
    the three: a few hundred combinations), and the payer classes."""
    combos = session.execute(select(Encounter.unit, Encounter.hospital_service,
                                    Encounter.payer_plan).distinct()).all()

    def values(at: int) -> list[str]:
        return sorted({str(row[at]) for row in combos if row[at]})
    return {"unit": [(u, u) for u in values(0)],
            "service": [(s, s) for s in values(1)],
            "payer": [(c, display.words(c)) for c in get_args(PayerClass)]
            + [(p, f"Plan {p}") for p in values(2)],
            "grain": list(GRAINS.items())}


def _audit(request: Request) -> None:
    """Aggregates of every stay in scope, no one patient: one audit entry for the page."""
    note(request, "search", "Metrics", request.url.path.rsplit("/", 1)[-1] or "metrics")


@router.get("/metrics", response_class=HTMLResponse)
def metrics_page(request: Request, user: MetricsReader, runtime: RuntimeDep,
                 now: Now) -> HTMLResponse:
    asked: Asked = read(request.query_params)
    query = request.url.query
    shown: list[Shown] = []
    with runtime.readers() as session:
        choices = _choices(session)
    if not asked.errors:
        drgs = _drgs(runtime)
        tables = compute_all(runtime.readers, asked.scope,
                             lambda: Context(now, runtime.site.zone, drgs))
        for metric in METRICS:
            drawn = charts.svg(metric, tables[metric.key])
            shown.append(Shown(metric, tables[metric.key], Markup(drawn) if drawn else None,
                               f"/metrics/{metric.key}.csv" + (f"?{query}" if query else "")))
    _audit(request)
    families: dict[str, list[Shown]] = {}
    for item in shown:
        families.setdefault(item.metric.family, []).append(item)
    return page(request, "metrics.html", {
        "typed": asked.typed, "errors": asked.errors, "choices": choices,
        "families": families, "as_of": display.local(now, runtime.site.zone,
                                                     "%a %d %b %Y %H:%M"),
    }, status_code=400 if asked.errors else 200)


@router.get("/metrics/{key}.csv")
def metric_csv(key: str, request: Request, user: MetricsReader, runtime: RuntimeDep,
               now: Now) -> Response:
    metric = BY_KEY.get(key)
    if metric is None:
        return page(request, "missing.html", {"what": "metric"}, status_code=404)
    asked = read(request.query_params)
    if asked.errors:
        return Response(" ".join(asked.errors.values()) + "\n", status_code=400,
                        media_type="text/plain; charset=utf-8")
    with runtime.readers() as session:
        table = metric.query(session, asked.scope,
                             Context(now, runtime.site.zone, _drgs(runtime)))
    _audit(request)
    return Response(table.csv(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{key}.csv"',
                             "Cache-Control": "no-store"})
