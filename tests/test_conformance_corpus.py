"""The conformance corpus, end to end: 113 HL7 v2 messages in the shapes Epic-, Cerner- and
Meditech-like senders use (2.3 to 2.8) sent in order through the real MLLP listener, and 20
converter-style FHIR Bundles POSTed to the real HTTP server; after each input, what FHIR
shows is checked against tests/corpus/*/expected.yaml (the target behaviour of issue 13).

The corpus runs on SQLite and, when configured, PostgreSQL (one server start each, a few
seconds). The test fails listing every case that is not as expected and the issue item it
depends on; `python -m tests.corpus.report` prints the same as the README's acceptance table.
"""

from __future__ import annotations

import time

from tests.corpus.run import FHIR_DIR, HL7_DIR, manifest, run_fhir, run_hl7, summary


def test_the_corpus_has_the_shapes_it_promises():
    hl7, fhir = manifest(HL7_DIR), manifest(FHIR_DIR)
    assert len(hl7) >= 80 and len(fhir) >= 20
    assert sorted(e["file"] for e in hl7) == [e["file"] for e in hl7]  # sent in order
    assert {p.name for p in HL7_DIR.glob("*.hl7")} == {e["file"] for e in hl7}
    assert {p.name for p in FHIR_DIR.glob("*.json")} == {e["file"] for e in fhir}
    first_lines = [(HL7_DIR / e["file"]).read_bytes().replace(b"\n", b"\r").split(b"\r")[0]
                   for e in hl7]
    versions = {line.split(b"|")[11].decode() for line in first_lines
                if line.startswith(b"MSH")}
    assert {"2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"} <= versions
    assert sum(bool(e.get("unknown")) for e in hl7) >= 10
    assert {"transaction", "batch"} <= {
        t for e in fhir if (t := str(e.get("type", "")).removesuffix("-response"))}


def test_every_corpus_input_gets_its_expected_outcome(server, tmp_path):
    started = time.monotonic()
    with server.client() as client:
        results = run_hl7(server, client) + run_fhir(client)
        assert client.get("/metadata").status_code == 200  # the server is still up
    table = summary(results)
    (tmp_path / "acceptance.md").write_text(table + "\n", encoding="utf-8")
    print(f"\n{table}\n({time.monotonic() - started:.1f} s)")
    assert server.proc.poll() is None, "the server died during the corpus"
    failing = [r for r in results if not r.ok]
    assert not failing, f"{len(failing)} of {len(results)} corpus cases are not as " \
                        f"expected:\n{table}"
