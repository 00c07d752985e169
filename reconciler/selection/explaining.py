"""Words for people: a Decision as ``image-factory explain`` prints it.

Written for someone who has never read the design documents: what the build asks for,
whose permissions were assumed, what was decided and why, every step of the way, and why
each other pool lost.
"""

from __future__ import annotations

import shutil
import textwrap
from dataclasses import dataclass

from .decisions import Actor, Decision
from .requirements import Needs
from .rules import TITLES

STATE_WORDS = {
    "Admitted": "ADMITTED: it can start now",
    "Queued": "QUEUED: it waits for a free slot",
    "Rejected": "REJECTED: it will not run until the build file or the infrastructure changes",
}


@dataclass(frozen=True)
class Context:
    """What explain knows besides the Decision."""

    path: str  # the build file, relative to the repository
    name: str
    team: str | None
    needs: Needs
    actor: Actor
    health_note: str  # where provider health came from
    load_note: str = ""


def _width() -> int:
    return max(72, min(120, shutil.get_terminal_size((100, 24)).columns))


def _field(label: str, text: str, width: int, indent: int = 12) -> str:
    return textwrap.fill(text, width=width, initial_indent=f"{label:<{indent}}", subsequent_indent=" " * indent,
                         break_on_hyphens=False, break_long_words=False)


def _needs_words(needs: Needs) -> str:
    wants = needs.wants()
    text = f"method {needs.method}, platforms {', '.join(needs.platforms)}"
    text += f"; needs {', '.join(wants)}" if wants else "; no special requirements"
    asks = []
    if needs.infrastructure != "auto":
        asks.append(f"infrastructure: {needs.infrastructure}")
    if needs.placement_provider:
        asks.append("placement " + (f"{needs.placement_provider}/{needs.placement_pool}" if needs.placement_pool
                                    else needs.placement_provider))
    if needs.force:
        asks.append("force: true (admin override)")
    if asks:
        text += f"; asks for {', '.join(asks)}"
    return text


def _actor_words(actor: Actor) -> str:
    held = ", ".join(sorted(actor.permissions)) or "no permissions"
    if actor.identity is None:
        return f"{actor.source or 'nobody in particular'}. Holds {held}."
    return f"{actor.identity}: {actor.source}. Holds {held}." if actor.source else f"{actor.identity}. Holds {held}."


def render(decision: Decision, ctx: Context, width: int | None = None) -> str:
    width = width or _width()
    lines = [
        _field("Build", f"{ctx.path}: {ctx.name} (team {ctx.team or '?'}); {_needs_words(ctx.needs)}", width),
        _field("Acting as", _actor_words(ctx.actor), width),
        _field("Health", ctx.health_note, width),
    ]
    if ctx.load_note:
        lines.append(_field("Load", ctx.load_note, width))
    lines.append("")
    if decision.state == "Rejected":
        lines.append(_field("Decision", STATE_WORDS["Rejected"], width))
    else:
        where = f"{decision.provider} / pool {decision.pool} ({decision.infrastructure.replace('_', ' ')})"
        lines.append(_field("Decision", f"{STATE_WORDS[decision.state]}; runs on provider {where}", width))
        lines.append(_field("Confidence", f"{decision.confidence:.2f} of 1 (how well the pool fits, and how clearly "
                                          "it beat the next best; see below)", width))
    lines.append(_field("Why", decision.reason, width))
    lines.append("")
    lines.append("How it was decided, step by step:")
    label = max(len(s.rule) for s in decision.path) + 2
    for i, step in enumerate(decision.path, 1):
        lines.append(_field(f"  {i:>2}. {step.rule}", step.outcome, width, indent=6 + label))
    alternatives = list(decision.alternatives)
    lines.append("")
    if alternatives:
        lines.append(f"The other {len(alternatives)} pool{'s' * (len(alternatives) != 1)}, and why each was not chosen:")
        name_width = min(44, max(len(f"{a.provider}/{a.pool}") for a in alternatives) + 2)
        steps = {step.rule: i for i, step in enumerate(decision.path, 1)}
        for a in alternatives:
            if a.score is not None:
                text = (f"fits (score {a.score:.2f}); {a.reason}" if decision.state == "Rejected"
                        else f"fits (score {a.score:.2f}) but lost: {a.reason}")
            else:
                title = TITLES.get(a.rule or "", a.rule or "")
                at = f"step {steps[title]} ({title})" if title in steps else title
                text = f"out at {at}: {a.reason}"
            lines.append(_field(f"  {a.provider}/{a.pool}", text, width, indent=2 + name_width))
    else:
        lines.append("There are no other pools.")
    lines.append("")
    lines.append(textwrap.fill(
        "Scores: 1.0 is a perfect fit; unneeded GPUs or special hardware, fallback infrastructure and unchecked or "
        "degraded health lower it. Confidence = score x (0.75 + 0.25 x lead), where lead is 1 when a rule or the "
        "pools' priority decided, smaller when the runner-up scored nearly as well, and 0 when only the names "
        "decided.", width=width))
    return "\n".join(lines)
