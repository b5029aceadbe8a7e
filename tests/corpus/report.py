"""Print the conformance corpus acceptance table: `python -m tests.corpus.report`.

Starts a real `engine serve` on a throwaway SQLite database (or `--database-url URL`),
runs the whole corpus (tests/corpus/run.py) and prints the Markdown table for the README,
then every case that is not as expected with the issue item it depends on.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness.launch import start_server
from tests.corpus.run import run_fhir, run_hl7, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="default: a new SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'corpus.db'}"
        server = start_server(url)
        try:
            with server.client() as client:
                results = run_hl7(server, client) + run_fhir(client)
        finally:
            server.kill()
    print(summary(results))


if __name__ == "__main__":
    main()
