"""Test cases kept beside the rulesets (rulesets/tests/*.yaml), and the runner for them.

Clinical informaticists write cases the way they talk about patients: a short ADT story (or
just the facts) and a moment, then the outputs they expect and the ones they must not see.
A story runs through the real one path (`Intake.hl7`) on a throw-away SQLite database and
then the clock, so a case checks the rules together with fact derivation, due times,
reconciliation and task completion, exactly as production would see them.

    schema   what a case may say (pydantic models) and how its times read
    files    reading case files, with lines, and a case's Result
    diff     expected against active outputs; mistakes in the case itself
    runner   replaying a story on a database (Runner, run_files); import it from
             engine.tools.cases.runner: it loads the database and the rules engine, which
             `engine rules check` does not need

The messages a story sends are built by engine.hl7.build (StoryStep, site_message).
"""

from engine.tools.cases.diff import Output, case_problems, differences
from engine.tools.cases.files import LoadedCase, Result, case_files, load_case_file
from engine.tools.cases.schema import (
    KINDS,
    Absent,
    Case,
    CaseFile,
    Expected,
    StoryEvent,
    local_time,
)

__all__ = [
    "KINDS", "Absent", "Case", "CaseFile", "Expected", "LoadedCase", "Output", "Result",
    "StoryEvent", "case_files", "case_problems", "differences", "load_case_file", "local_time",
]
