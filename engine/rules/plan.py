"""The discharge plan: the dispositions the rules propose for a stay, ranked into one primary
recommendation and its alternatives, and the one task that asks a case manager to confirm it.

Order: the declared `rank` of each propose action (lower first; in the shipped rulesets a
higher level of care the facts support outranks a lower one), then confidence (high,
moderate, low), then the transition code, so the order never depends on the order of the
rules. A proposal without a rank (outpatient follow-up) is not a disposition: it stands
beside the plan with its own task. Once a case manager has chosen a disposition (the fact
`chosen_disposition`, recorded by completing the plan task), the other dispositions are
closed for the stay and not proposed again. Pure: it rearranges what the rules want.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.core.vocabulary import OutputKind
from engine.rules.compile import Book
from engine.rules.model import ProposeAction

if TYPE_CHECKING:  # a type only: engine.rules.outputs calls arrange()
    from engine.rules.outputs import Desired

CONFIDENCE_ORDER = {"high": 0, "moderate": 1, "low": 2}
PRIMARY, ALTERNATIVE = "primary", "alternative"
PLAN_TASK = "discharge_plan"  # the detail key that marks a plan task and holds its plan
_CHOICES: dict[str, list[dict[str, str]]] = {}


def choices(book: Book) -> list[dict[str, str]]:
    """Every disposition the loaded rules can propose, in rank order: what a case manager may
    choose (the patient may choose a setting the rules did not propose)."""
    if book.version not in _CHOICES:
        ranked: dict[str, tuple[int, str]] = {}
        for rule in book.rules:
            for action in rule.rule.then:
                body = action.body
                if isinstance(body, ProposeAction) and body.rank is not None:
                    title = body.title or body.transition.replace("_", " ")
                    best = ranked.get(body.transition)
                    if best is None or body.rank < best[0]:
                        ranked[body.transition] = (body.rank, title)
        _CHOICES[book.version] = [{"code": code, "title": title} for code, (_rank, title)
                                  in sorted(ranked.items(), key=lambda kv: (kv[1][0], kv[0]))]
    return _CHOICES[book.version]


def _is_disposition(d: Desired) -> bool:
    return (d.fields["kind"] == OutputKind.PROPOSAL
            and d.fields["detail"].get("plan_rank") is not None)


def _order(d: Desired) -> tuple[int, int, str]:
    detail = d.fields["detail"]
    return (detail["plan_rank"], CONFIDENCE_ORDER.get(detail.get("confidence", ""), 3),
            d.fields["code"])


def arrange(desired: list[Desired], chosen: str | None, known: list[dict[str, str]],
            closed_codes: frozenset[str] = frozenset()) -> list[Desired]:
    """Mark each proposed disposition primary or alternative, write the plan into the plan
    task, and drop the dispositions a person closed: every other one once `chosen` is set,
    and those in `closed_codes` (fact closed_dispositions: declined, or closed by a choice;
    a stored proposal is closed by a person when its detail has "closed_by")."""
    proposals = sorted((d for d in desired if _is_disposition(d)), key=_order)
    closed = {id(d) for d in proposals if (chosen and d.fields["code"] != chosen)
              or d.fields["code"] in closed_codes}
    proposals = [d for d in proposals if id(d) not in closed]
    options: list[dict[str, Any]] = []
    for d in proposals:
        d.fields["detail"]["plan"] = ALTERNATIVE if options else PRIMARY
        if all(o["code"] != d.fields["code"] for o in options):
            reasons = d.fields["detail"].get("reasons") or []
            options.append({"code": d.fields["code"], "title": d.fields["title"],
                            "reason": str(reasons[0]) if reasons else ""})
    out = []
    for d in desired:
        if id(d) in closed:
            continue
        if PLAN_TASK in d.fields["detail"]:
            if not options:
                continue  # nothing to confirm: no disposition proposed
            _write_plan(d, options, known)
        out.append(d)
    return out


def _write_plan(task: Desired, options: list[dict[str, Any]],
                known: list[dict[str, str]]) -> None:
    primary, alternatives = options[0], options[1:]
    detail = task.fields["detail"]
    detail[PLAN_TASK] = {"primary": primary["code"],
                         "alternatives": [o["code"] for o in alternatives],
                         "choices": known}
    why = f"Why: {primary['reason'].rstrip('.')}." if primary["reason"] else ""
    others = (", ".join(o["title"] for o in alternatives) if alternatives
              else "none proposed")
    base = (detail.get("instructions") or "").strip()
    detail["instructions"] = " ".join(p for p in (
        base, f"Primary recommendation: {primary['title']}.", why,
        f"Alternatives: {others}.") if p)
