"""FHIR search over the UR record's mixed tables: every page of Flag (the rules' flags and
the barriers) and Observation (reviews, avoidable days, labs), in id order and newest first.

Usage: python bench/fhir_ur.py [--stays N]   (SQLite, in-process app; not part of run.py)

Each stay has five barriers and five reviews; half have a social-risk flag. Prints, per
search, the total, the pages of 50 and the median and slowest page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.api.app import create_app  # noqa: E402
from engine.api.runtime import Runtime  # noqa: E402
from engine.core.config import Settings  # noqa: E402
from engine.core.roles import Principal  # noqa: E402
from engine.hl7.build import adt  # noqa: E402
from engine.storage.models import Encounter  # noqa: E402
from engine.work.ur_record import barriers, reviews  # noqa: E402
from engine.work.ur_record.inputs import BarrierInput, ReviewInput  # noqa: E402
from harness.launch import JWT_SECRET, signed_in  # noqa: E402

CHICAGO = ZoneInfo("America/Chicago")
SOCIAL_RISK = "DG1|1||Z59.01^Sheltered homelessness^I10||20260101|A"


def seed(rt: Runtime, stays: int) -> None:
    admitted = (datetime.now(CHICAGO) - timedelta(days=3)).strftime("%Y%m%d%H%M")
    for n in range(stays):
        rt.intake.hl7(adt("A01", admitted, admit_time=admitted, mrn=f"95{n:04d}",
                          visit=f"B{n}", extra=[SOCIAL_RISK] if n % 2 else None))
    manager = Principal("bench.cm", "user", "case_manager")
    nurse = Principal("bench.ur", "user", "ur_nurse")
    now = rt.clock.now()
    today = now.astimezone(rt.site.zone).date()
    assert rt.rules.current is not None
    ref = rt.rules.current.book.reference
    with rt.sessions() as session, session.begin():
        for enc in session.scalars(select(Encounter)):
            for code in ("PF01", "PF02", "PF03", "PF04", "PF01"):
                barriers.open_barrier(session, enc, BarrierInput(code), manager, now, rt.site,
                                      ref)
            for k in range(5):
                reviews.record(session, enc, ReviewInput(
                    "continued_stay", today - timedelta(days=k % 3), "inpatient", "met"),
                    nurse, now, rt.site)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stays", type=int, default=100)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    rt = Runtime.open(Settings(database_url=f"sqlite:///{folder / 'bench.db'}",
                               jwt_secret=JWT_SECRET))
    seed(rt, args.stays)
    with TestClient(create_app(rt)) as client:
        def token(url: str, form: dict[str, str]) -> str:
            return str(client.post(url, data=form).json()["access_token"])

        headers = signed_in(rt.settings.database_url, "", "integration", post=token)
        for kind in ("Flag", "Observation"):
            for sort in ("", "&_sort=-_lastUpdated"):
                times, url, pages, total = [], f"/fhir/{kind}?_count=50{sort}", 0, 0
                while url:
                    start = time.perf_counter()
                    body = client.get(url, headers=headers).json()
                    times.append(time.perf_counter() - start)
                    pages, total = pages + 1, body["total"]
                    url = next((li["url"] for li in body["link"] if li["relation"] == "next"),
                               None)
                print(f"{kind}{sort}: {total} matches, {pages} pages of 50, median "
                      f"{statistics.median(times) * 1000:.1f} ms a page, slowest "
                      f"{max(times) * 1000:.1f} ms")
    rt.close()


if __name__ == "__main__":
    main()
