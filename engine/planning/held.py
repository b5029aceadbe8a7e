"""What people decided, applied to what the rules want: a declined task or proposal is not
raised again for the stay while the facts its decision rests on (engine.rules.reconsider)
keep the values they had when it was made; when one changes, the decision lapses and the
work is raised once more, for a person to decide again."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.rules.compile import Book, Diagnoses
from engine.rules.outputs import Desired
from engine.rules.reconsider import changed, covers, material
from engine.storage.models import Decision
from engine.work import decisions as kept


def withhold(book: Book, values: dict[str, Any], diagnoses: Diagnoses, desired: list[Desired],
             holding: list[Decision], now: datetime, *, write: bool = True,
             ) -> tuple[list[Desired], dict[str, Decision]]:
    """The outputs still to raise, and {key: decision} for those a decision withholds.

    With `write`, a decision made since the last evaluation records the facts it rests on,
    and one whose facts changed lapses (in the caller's transaction)."""
    if not holding:
        return desired, {}
    rules = {r.id: r for r in book.rules}
    by_rule: dict[str, list[Decision]] = {}
    for decision in holding:
        if decision.rule_id in rules:
            by_rule.setdefault(decision.rule_id, []).append(decision)
    facts: dict[str, dict[str, Any]] = {}

    def current(rule_id: str) -> dict[str, Any]:
        if rule_id not in facts:
            facts[rule_id] = material(book, rules[rule_id], values, diagnoses)
        return facts[rule_id]

    lapsed: set[int] = set()
    out: list[Desired] = []
    withheld: dict[str, Decision] = {}
    for d in desired:
        rule_id = d.fields["rule_id"]
        held = None
        for decision in by_rule.get(rule_id, []):
            if id(decision) in lapsed or not covers(rules[rule_id],
                                                   decision.output_key.partition("#")[0], d.key):
                continue
            now_facts = current(rule_id)
            moved = changed(decision.holds_on, now_facts) if decision.holds_on else []
            if moved:
                lapsed.add(id(decision))
                if write:
                    kept.lapse(decision, now, moved)
                continue
            if write and decision.holds_on is None:
                decision.holds_on = now_facts
            held = decision
        if held is None:
            out.append(d)
        else:
            withheld[d.key] = held
    if write:  # a decision whose rule no longer fires still records what it rested on
        for rule_id, found in by_rule.items():
            for decision in found:
                if decision.holds_on is None and id(decision) not in lapsed:
                    decision.holds_on = current(rule_id)
    return out, withheld
