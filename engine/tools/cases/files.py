"""Reading case files: the cases of a folder or file, each with its line, or the reasons a
file cannot be read; and the Result a case comes to."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import ValidationError

from engine.rules.loader import yaml_error, yaml_lines
from engine.tools.cases.schema import Case, CaseFile


@dataclass
class LoadedCase:
    case: Case
    path: Path
    line: int
    problems: list[str] = field(default_factory=list)  # the case cannot run as written


@dataclass
class Result:
    path: Path
    line: int
    name: str
    failures: list[str]
    known_gap: str | None = None
    invalid: bool = False
    outputs: list[str] = field(default_factory=list)  # active at `at`, for -v

    @property
    def verdict(self) -> Literal["pass", "fail", "gap"]:
        if self.invalid:
            return "fail"
        if self.known_gap:
            return "gap" if self.failures else "fail"
        return "fail" if self.failures else "pass"

    @property
    def messages(self) -> list[str]:
        if self.known_gap and not self.failures and not self.invalid:
            return [f"passes now, though marked as a known gap ({self.known_gap}): "
                    "remove `known_gap`"]
        return self.failures


def case_files(target: Path) -> list[Path]:
    """A folder's tests/*.yaml (or the folder itself if it holds the cases), or one file."""
    if target.is_file():
        return [target]
    folder = target / "tests" if (target / "tests").is_dir() else target
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in (".yaml", ".yml"))


def load_case_file(path: Path) -> tuple[list[LoadedCase], list[Result]]:
    """The cases of one file, or the reasons the file cannot be read (with lines)."""
    def broken(line: int, message: str, name: str = "(file)") -> Result:
        return Result(path, line, name, [message], invalid=True)

    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as exc:
        return [], [broken(1, f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError:
        return [], [broken(1, "not UTF-8 text")]
    except yaml.MarkedYAMLError as exc:
        line, _rule, message = yaml_error(exc)
        return [], [broken(line, message)]
    except yaml.YAMLError as exc:
        return [], [broken(1, f"YAML error: {exc}")]
    if not isinstance(data, dict) or node is None:
        return [], [broken(1, "a test file is a mapping with `cases:`")]
    lines = yaml_lines(node)

    def known(loc: tuple) -> tuple:
        """The error's location in the file, without pydantic's union-member names."""
        path: tuple = ()
        for part in loc:
            part = {"class_": "class", "not_": "not"}.get(part, part)
            if (*path, part) in lines:
                path = (*path, part)
        return path

    try:
        model = CaseFile.model_validate(data)
    except ValidationError as exc:
        results = []
        for err in exc.errors():
            loc = known(err["loc"])
            name = "(file)"
            if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
                raw = data["cases"][loc[1]] if isinstance(data.get("cases"), list) else None
                name = str(raw.get("name", f"case {loc[1] + 1}")) if isinstance(raw, dict) \
                    else f"case {loc[1] + 1}"
            shown = loc[:-1] if err["type"] == "extra_forbidden" else loc
            where = ".".join(str(p) for p in (shown[2:] if name != "(file)" else shown))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {err['loc'][-1]!r}"
            results.append(broken(lines.get(loc, 1), f"{where}: {msg}" if where else msg, name))
        return [], results
    return [LoadedCase(c, path, lines.get(("cases", i), 1))
            for i, c in enumerate(model.cases)], []

