"""Run the conformance corpus against a real `engine serve`: every HL7 file over MLLP in
order, every Bundle POSTed to /fhir, and what each left behind read back through FHIR.

Shared by tests/test_conformance_corpus.py (which asserts every case) and
tests/corpus/report.py (which prints the acceptance table for the README).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from hl7.client import MLLPClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from engine.storage.db import normalise_url
from engine.storage.models import InboundMessage
from harness.launch import ServerProcess

HERE = Path(__file__).resolve().parent
HL7_DIR, FHIR_DIR = HERE / "hl7", HERE / "fhir"
# Converter entries the engine acknowledges without keeping them (issue 13 item 4).
NOT_KEPT = frozenset({"MessageHeader", "Provenance", "AllergyIntolerance", "Procedure"})


@dataclass
class Result:
    """One case: what was expected, what was answered, and every difference found."""

    kind: str  # hl7 | fhir
    name: str
    expected: dict[str, Any]
    answer: str = ""
    after: str = ""  # an earlier failure in the same story this one may follow from
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def depends(self) -> str:
        return str(self.expected.get("depends") or "")


def manifest(folder: Path) -> list[dict[str, Any]]:
    return list(yaml.safe_load((folder / "expected.yaml").read_text(encoding="utf-8")))


def _allowed(value: Any) -> set[str]:
    return {part.strip() for part in str(value).split("|")}


# -- reading an ACK -----------------------------------------------------------------------------
def ack_fields(ack: bytes) -> tuple[str, str, str]:
    """(MSA-1, MSA-2, the HL7 error code of the first ERR: ERR-3.1, else ERR-1.4.1)."""
    text = ack.decode("utf-8", "replace").strip("\x0b\x1c\r\n")
    code, echoed, err = "", "", ""
    for line in text.replace("\n", "\r").split("\r"):
        fields = line.split("|")
        if fields[0] == "MSA" and len(fields) > 1:
            code = fields[1]
            echoed = fields[2] if len(fields) > 2 else ""
        if fields[0] == "ERR" and not err:
            if len(fields) > 3 and fields[3]:
                err = fields[3].split("^")[0]
            elif len(fields) > 1:
                parts = fields[1].split("^")
                err = parts[3].split("&")[0] if len(parts) > 3 else ""
    return code, echoed, err


def control_id(raw: bytes) -> str | None:
    first = raw.replace(b"\n", b"\r").split(b"\r")[0].decode("latin-1")
    if not first.startswith("MSH"):
        return None
    fields = first.split("|")
    return fields[9] if len(fields) > 9 else None


def is_adt(raw: bytes) -> bool:
    first = raw.replace(b"\n", b"\r").split(b"\r")[0].split(b"|")
    return first[0] == b"MSH" and len(first) > 8 and first[8].startswith(b"ADT^")


def carries_patient_identifier(raw: bytes) -> bool:
    """A message with a PID-3 value: the denominator of the acceptance rate."""
    for line in raw.replace(b"\n", b"\r").split(b"\r"):
        fields = line.decode("latin-1").split("|")
        if fields[0] == "PID" and len(fields) > 3 and fields[3].split("^")[0]:
            return True
    return False


# -- reading FHIR back --------------------------------------------------------------------------
class Reader:
    """The FHIR read side, as a client would use it after each input."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def search(self, kind: str, **params: str) -> list[dict]:
        answer = self.client.get(f"/{kind}", params=params)
        if answer.status_code != 200:
            raise AssertionError(f"GET /{kind}?{params} answered {answer.status_code}")
        return [e["resource"] for e in answer.json().get("entry") or []
                if e.get("resource", {}).get("resourceType") == kind]

    def resolved(self, node: Any) -> str:
        """The JSON of `node` with every relative reference in it read and appended."""
        text = json.dumps(node)
        for ref in _references(node):
            if "/" in ref and not ref.startswith(("#", "urn:", "http")):
                answer = self.client.get(f"/{ref}")
                if answer.status_code == 200:
                    text += json.dumps(answer.json())
        return text


def _references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


def _current_location(enc: dict) -> Any:
    locations = enc.get("location") or []
    active = [loc for loc in locations if loc.get("status") != "completed"]
    return (active or locations)[-1:] or None


def _official_family(pat: dict) -> str | None:
    names = pat.get("name") or []
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    return name.get("family")


def check_state(reader: Reader, expect: dict[str, Any], problems: list[str],
                status_key: str = "status") -> None:
    """What the manifest says FHIR must show now (after this input); the encounter status
    is `status` in the HL7 manifest, `encounter_status` in the FHIR one (where `status` is
    the HTTP status)."""
    pat: dict | None = None
    if ident := expect.get("patient"):
        found = reader.search("Patient", identifier=str(ident))
        if len(found) != 1:
            problems.append(f"Patient?identifier={ident} finds {len(found)} patients")
        else:
            pat = found[0]
    absent = expect.get("patient_absent")
    if absent and (found := reader.search("Patient", identifier=str(absent))):
        problems.append(f"refused, yet Patient?identifier={absent} finds {len(found)}")
    if pat is not None:
        if "family" in expect and _official_family(pat) != expect["family"]:
            problems.append(f"official family name is {_official_family(pat)!r}, expected "
                            f"{expect['family']!r}")
        if "active" in expect and pat.get("active", True) != expect["active"]:
            problems.append(f"Patient.active is {pat.get('active', True)}, expected "
                            f"{expect['active']}")
        if "encounters" in expect:
            stays = reader.search("Encounter", patient=f"Patient/{pat['id']}")
            if len(stays) != expect["encounters"]:
                problems.append(f"the patient has {len(stays)} encounters, expected "
                                f"{expect['encounters']}")
    visit = expect.get("encounter")
    if not visit:
        return
    found = reader.search("Encounter", identifier=str(visit))
    if len(found) != 1:
        problems.append(f"Encounter?identifier={visit} finds {len(found)} encounters")
        return
    enc = found[0]
    if pat is not None and enc.get("subject", {}).get("reference") != f"Patient/{pat['id']}":
        problems.append(f"encounter {visit} belongs to {enc.get('subject')}, not to "
                        f"Patient/{pat['id']}")
    status = expect.get(status_key)
    if status and enc.get("status") != status:
        problems.append(f"encounter status {enc.get('status')!r}, expected {status!r}")
    if unit := expect.get("location"):
        here = _current_location(enc)
        if here is None or str(unit) not in reader.resolved(here):
            problems.append(f"current location is {json.dumps(here)[:120]}, expected {unit}")
    if who := expect.get("attending"):
        people = enc.get("participant") or []
        if str(who) not in reader.resolved(people):
            problems.append(f"attending {who} not in participant {json.dumps(people)[:160]}")


# -- HL7 over MLLP ------------------------------------------------------------------------------
class Sender:
    """One MLLP connection, opened again if the listener closed it (which is a finding)."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.client: MLLPClient | None = None

    def send(self, raw: bytes) -> bytes:
        for attempt in (1, 2):
            if self.client is None:
                self.client = MLLPClient("127.0.0.1", self.server.mllp_port)
                self.client.socket.settimeout(20)
            try:
                return self.client.send_message(raw)
            except OSError:  # TimeoutError included
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def _stored_outcome(database_url: str, cid: str | None) -> str | None:
    engine = create_engine(normalise_url(database_url))
    try:
        with Session(engine) as session:
            row = session.scalars(select(InboundMessage)
                                  .where(InboundMessage.control_id == cid if cid
                                         else InboundMessage.control_id.is_(None))
                                  .order_by(InboundMessage.id.desc()).limit(1)).first()
            return row.outcome if row is not None else None
    finally:
        engine.dispose()


def run_hl7(server: ServerProcess, client: httpx.Client) -> list[Result]:
    reader, sender, results = Reader(client), Sender(server), []
    try:
        for expect in manifest(HL7_DIR):
            raw = (HL7_DIR / expect["file"]).read_bytes()
            result = Result("hl7", expect["file"], expect)
            results.append(result)
            try:
                ack = sender.send(raw)
            except OSError as exc:
                result.answer = "no answer"
                result.problems.append(f"no ACK: {type(exc).__name__}")
                continue
            code, echoed, err = ack_fields(ack)
            result.answer = code + (f" {err}" if err else "")
            cid = control_id(raw)
            if cid and echoed != cid:
                result.problems.append(f"MSA-2 is {echoed!r}, not the MSH-10 {cid!r}")
            if code not in _allowed(expect["ack"]):
                result.problems.append(f"answered {result.answer}, expected {expect['ack']}"
                                       + (f" {expect['err']}" if expect.get("err") else ""))
                continue
            if code != "AA" and expect.get("err") and err not in _allowed(expect["err"]):
                result.problems.append(f"ERR code {err or '(none)'}, expected {expect['err']}")
            if code == "AA":
                outcome = _stored_outcome(server.database_url, cid)
                if expect.get("unknown") or expect.get("ignorable"):
                    if outcome not in ("ignored", "accepted"):
                        result.problems.append(f"AA but stored as {outcome!r}: neither "
                                               "applied nor listed as ignored")
                elif outcome != "accepted":
                    result.problems.append(f"AA but stored as {outcome!r}, not applied")
            if code == "AA" or expect.get("patient_absent"):
                try:
                    check_state(reader, expect, result.problems)
                except AssertionError as exc:
                    result.problems.append(str(exc))
    finally:
        sender.close()
    return results


# -- FHIR Bundles -------------------------------------------------------------------------------
def run_fhir(client: httpx.Client) -> list[Result]:
    reader, results = Reader(client), []
    for expect in manifest(FHIR_DIR):
        body = (FHIR_DIR / expect["file"]).read_bytes()
        result = Result("fhir", expect["file"], expect)
        results.append(result)
        answer = client.post("", content=body,
                             headers={"Content-Type": "application/fhir+json"})
        result.answer = str(answer.status_code)
        try:
            doc = answer.json()
        except ValueError:
            doc = {}
        if str(answer.status_code) not in _allowed(expect["status"]):
            issue = ""
            if doc.get("resourceType") == "OperationOutcome":
                issue = ": " + "; ".join(str(i.get("diagnostics", ""))[:160]
                                         for i in doc.get("issue", []))
            result.problems.append(f"answered {answer.status_code}, expected "
                                   f"{expect['status']}{issue}")
            continue
        if expect.get("outcome") and doc.get("resourceType") != "OperationOutcome":
            result.problems.append("the refusal is not an OperationOutcome")
        if kind := expect.get("type"):
            if doc.get("type") != kind:
                result.problems.append(f"response Bundle type {doc.get('type')!r}, "
                                       f"expected {kind!r}")
            entries = doc.get("entry") or []
            sent = json.loads(body).get("entry") or []
            if len(entries) != len(sent):
                result.problems.append(f"{len(entries)} response entries for {len(sent)} sent")
            failing = set(expect.get("entry_fails") or [])
            for i, (entry, request) in enumerate(zip(entries, sent, strict=False)):
                response = entry.get("response", {})
                status = str(response.get("status", ""))
                if (i in failing) != status.startswith("4"):
                    result.problems.append(f"entry {i} answered {status!r}, expected "
                                           f"{'4xx' if i in failing else '2xx'}")
                kind = request.get("resource", {}).get("resourceType")
                if kind in NOT_KEPT and status.startswith("2") and "information" not in [
                        i.get("severity") for i in
                        (response.get("outcome") or {}).get("issue", [])]:
                    result.problems.append(f"entry {i} ({kind}) is not kept, yet its response "
                                           "has no OperationOutcome issue 'information'")
        try:
            check_state(reader, expect, result.problems, "encounter_status")
        except AssertionError as exc:
            result.problems.append(str(exc))
    return results


# -- the summary --------------------------------------------------------------------------------
def summary(results: list[Result]) -> str:
    """The acceptance summary: applied among messages with a patient identifier; matches."""
    hl7 = [r for r in results if r.kind == "hl7"]
    fhir = [r for r in results if r.kind == "fhir"]
    adt = [r for r in hl7 if is_adt((HL7_DIR / r.name).read_bytes())]
    with_id = [r for r in adt if carries_patient_identifier((HL7_DIR / r.name).read_bytes())
               and "AA" in _allowed(r.expected["ack"])]
    applied = [r for r in with_id if r.answer.startswith("AA")]
    lines = [
        "| corpus | cases | as expected | rate |",
        "|---|---|---|---|",
        _row("HL7 v2 messages (MLLP)", hl7),
        _row("FHIR Bundles (POST /fhir)", fhir),
        _row("all", results),
        "",
        f"ADT messages carrying a patient identifier (refusals by design left out): "
        f"{len(with_id)}; answered AA: {len(applied)} ({_pct(len(applied), len(with_id))}).",
    ]
    failing = [r for r in results if not r.ok]
    _mark_cascades(hl7)
    if failing:
        lines += ["", "Not as expected, by the issue item they depend on:"]
        by_cause = Counter(r.depends or "(no stated dependency)" for r in failing)
        for cause, count in by_cause.most_common():
            lines.append(f"- {cause}: {count}")
            for r in failing:
                if (r.depends or "(no stated dependency)") == cause:
                    after = f" (after {r.after})" if r.after else ""
                    lines.append(f"  - {r.name}: {r.answer}: {'; '.join(r.problems)[:300]}"
                                 f"{after}")
    return "\n".join(lines)


def _mark_cascades(hl7: list[Result]) -> None:
    """Name, on each failing message, the first earlier failure in the same story: it may
    fail only because its story's earlier message was not applied."""
    first_failure: dict[str, str] = {}
    for r in hl7:
        story = str(r.expected.get("story") or "")
        if not story or story == "R":
            continue
        if not r.ok and story in first_failure:
            r.after = first_failure[story]
        if not r.ok:
            first_failure.setdefault(story, r.name)


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "n/a"


def _row(label: str, rows: list[Result]) -> str:
    good = sum(r.ok for r in rows)
    return f"| {label} | {len(rows)} | {good} | {_pct(good, len(rows))} |"
