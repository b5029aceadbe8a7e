"""Reading ruleset files: YAML with line numbers, schema validation, content hashes.

A broken file never half-loads: every problem comes back as a RulesetError naming the file,
the line and the rule id, so an informaticist can go straight to it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.core.errors import RulesetProblem
from engine.rules.model import Ruleset

SKIP_DIRS = {"tests", "reference"}
_TAGS = {"AllOf", "AnyOf", "NotOf", "DiagnosisCondition", "OutputCondition", "Comparison"}
# Where a node sits in the YAML: mapping keys and sequence indexes, from the top.
YamlPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path
    line: int
    rule_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {'rule ' + self.rule_id + ': ' if self.rule_id else ''}{self.message}"


class RulesetError(RulesetProblem, ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class RulesetFile:
    path: Path
    model: Ruleset
    digest: str
    lines: dict[YamlPath, int] = field(default_factory=dict)

    def line_of(self, *path: str | int) -> int:
        """The YAML line of the deepest known node on this path (1-based)."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 1

    def rule_line(self, rule_id: str) -> int:
        for i, rule in enumerate(self.model.rules):
            if rule.id == rule_id:
                return self.line_of("rules", i)
        return 1


def yaml_lines(node: yaml.Node, path: YamlPath = (), out: dict[YamlPath, int] | None = None
               ) -> dict[YamlPath, int]:
    """The line of every mapping key and list item under `node`, by path: where a problem
    in a ruleset or case file is reported."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)  # a key's own line beats its value's
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[(*path, key.value)] = key.start_mark.line + 1
            yaml_lines(value, (*path, key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yaml_lines(item, (*path, i), out)
    return out


def _pydantic_problems(path: Path, exc: ValidationError, lines: dict[YamlPath, int],
                       data: dict[str, Any]) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in _TAGS)
        loc = tuple("in" if p == "in_" else "not" if p == "not_" else p for p in loc)
        line = 1
        for end in range(len(loc), -1, -1):
            if loc[:end] in lines:
                line = lines[loc[:end]]
                break
        rule_id = None
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            try:
                rule_id = data["rules"][loc[1]].get("id")
            except (KeyError, IndexError, TypeError, AttributeError):
                rule_id = None
        where = ".".join(str(p) for p in loc[2:] if not isinstance(p, int)) if rule_id else \
            ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        problems.append(Problem(path, line, rule_id, f"{where}: {msg}" if where else msg))
    return problems


def yaml_error(exc: yaml.MarkedYAMLError) -> tuple[int, None, str]:
    """Line and message of a YAML error, naming where the unclosed thing began if elsewhere."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    message = f"YAML error: {exc.problem}"
    if exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
        message += f" ({exc.context} on line {exc.context_mark.line + 1})"
    return line, None, message


def load_file(path: Path) -> RulesetFile:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesetError([Problem(path, 1, None, f"cannot read: {exc.strerror}")]) from exc
    try:
        text = raw.decode("utf-8")
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise RulesetError([Problem(path, 1, None, "not UTF-8 text")]) from exc
    except yaml.MarkedYAMLError as exc:
        raise RulesetError([Problem(path, *yaml_error(exc))]) from exc
    except yaml.YAMLError as exc:
        raise RulesetError([Problem(path, 1, None, f"YAML error: {exc}")]) from exc
    if not isinstance(data, dict) or node is None:
        raise RulesetError([Problem(path, 1, None, "a ruleset file is a mapping with name, "
                                                   "version, owner and rules")])
    lines = yaml_lines(node)
    try:
        model = Ruleset.model_validate(data)
    except ValidationError as exc:
        raise RulesetError(_pydantic_problems(path, exc, lines, data)) from exc
    return RulesetFile(path, model, hashlib.sha256(raw).hexdigest()[:12], lines)


def ruleset_paths(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise RulesetError([Problem(target, 1, None, "no such file or folder")])
    return sorted(p for p in target.rglob("*.y*ml")
                  if p.suffix in (".yaml", ".yml")
                  and not SKIP_DIRS & set(p.relative_to(target).parts[:-1]))


def load_folder(target: Path) -> list[RulesetFile]:
    """Every ruleset file under `target` (tests/ and reference/ excluded), all or nothing."""
    files, problems = [], []
    for path in ruleset_paths(target):
        try:
            files.append(load_file(path))
        except RulesetError as exc:
            problems += exc.problems
    if problems:
        raise RulesetError(problems)
    return files
