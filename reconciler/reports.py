"""How plans and reviews read: plain text for terminals, Markdown for PR comments, JSON for scripts.

Nothing here computes anything; it only formats ``planning.Plan`` and ``reviewing.Review``.
Diffs are already masked by ``planning``; no formatter prints a credential, sealed or not.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .planning import Plan, PlanEntry

MARKDOWN_LIMIT = 65_536  # GitHub's limit for a comment body
_COLOR = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}
_RESET = "\033[0m"
_ICONS = {"create": "+", "update": "~", "prune": "-", "cancel": "x", "unchanged": "="}


def color_diff(text: str) -> str:
    out = []
    for line in text.splitlines(keepends=True):
        head = line[:1]
        if line.startswith(("+++", "---")):
            out.append(f"\033[1m{line.rstrip(chr(10))}{_RESET}\n")
        elif head in _COLOR:
            out.append(f"{_COLOR[head]}{line.rstrip(chr(10))}{_RESET}\n")
        else:
            out.append(line)
    return "".join(out)


def plan_text(plan: Plan, color: bool = False, diffs: bool = True) -> str:
    lines: list[str] = []
    for cluster, entries in _by_cluster(plan.changes).items():
        lines.append(f"cluster {cluster}:")
        for entry in entries:
            lines.append(f"  {_ICONS[entry.action]} {entry.action:7} {entry.key}{_owner_text(entry)}")
        if diffs:
            for entry in entries:
                lines.append(color_diff(entry.diff) if color else entry.diff)
    for cluster, reason in sorted(plan.unreachable.items()):
        lines.append(f"cluster {cluster}: not compared: {reason}")
    lines.append(plan.summary())
    return "\n".join(line.rstrip("\n") for line in lines if line is not None) + "\n"


def _owner_text(entry: PlanEntry) -> str:
    if entry.build:
        return f"  (build {entry.build}, {entry.source})" if entry.source else f"  (build {entry.build})"
    if entry.pool:
        return f"  (pool {entry.pool})"
    return ""


def _by_cluster(entries) -> dict[str, list[PlanEntry]]:
    out: dict[str, list[PlanEntry]] = defaultdict(list)
    for entry in entries:
        out[entry.key.cluster].append(entry)
    return dict(sorted(out.items()))


# --- review ------------------------------------------------------------------------------

def verdict_line(review: Any) -> str:
    if review.mergeable:
        return f"Mergeable: no validation errors, no permission violations. {review.plan.summary()}."
    return f"Not mergeable: {', '.join(review.blockers())}."


def review_text(review: Any, color: bool = False) -> str:
    out = [verdict_line(review), "", f"Reviewing {review.base}..{review.head} (merge base {review.merge_base[:12]})", ""]
    out.append("1. Validation of the head")
    out.extend(f"   {p}" for p in review.problems) if review.problems else out.append("   all files valid")
    out.append("")
    out.append("2. Permissions")
    for verdict in review.verdicts:
        mark = "ok " if verdict.allowed else "NO "
        files = ", ".join(f"{f.status} {f.path}" for f in verdict.commit.files) or "no files"
        out.append(f"   {mark}{verdict.commit.sha[:12]} {verdict.commit.summary[:60]!r} by {verdict.actor}: {files}")
        for v in verdict.violations:
            out.append(f"       {v.path}: {v.message}")
    if not review.verdicts:
        out.append("   no commits")
    out.append("")
    out.append("3. Selection for added or changed builds")
    for s in review.selections:
        d = s.decision
        where = f"{d.provider}/{d.pool}" if d.pool else "nowhere"
        out.append(f"   {s.name} ({s.change}, {s.path}): {d.state} on {where}, confidence {d.confidence:.2f}")
        out.append(f"       {d.reason}")
    for name in review.removed_builds:
        out.append(f"   {name}: removed (its objects are pruned; a running run is cancelled)")
    if not review.selections and not review.removed_builds:
        out.append("   no build added or changed")
    out.append("")
    out.append("4. Plan")
    out.append("   " + plan_text(review.plan, color=color).rstrip("\n").replace("\n", "\n   "))
    for note in review.notes:
        out.append(f"   note: {note}")
    return "\n".join(out) + "\n"


def review_markdown(review: Any, limit: int = MARKDOWN_LIMIT) -> str:
    icon = ":white_check_mark:" if review.mergeable else ":x:"
    head = [f"### {icon} image-factory review: {verdict_line(review)}", "",
            f"`{review.base}..{review.head}` (merge base `{review.merge_base[:12]}`)", ""]
    body: list[str] = []
    body.append(f"#### Validation {'passed' if not review.problems else f'failed ({len(review.problems)})'}")
    if review.problems:
        body.append("")
        body.extend(f"- `{p.path}:{p.line}` **{p.field or 'file'}**: {_md(p.message)}" for p in review.problems)
    body.append("")
    violations = review.violations
    body.append(f"#### Permissions {'ok' if not violations else f'violated ({len(violations)})'}")
    body.append("")
    body.append("| commit | author | files | verdict |")
    body.append("|---|---|---|---|")
    for verdict in review.verdicts:
        files = "<br>".join(f"{f.status} `{f.path}`" for f in verdict.commit.files[:10])
        if len(verdict.commit.files) > 10:
            files += f"<br>... and {len(verdict.commit.files) - 10} more"
        if verdict.allowed:
            result = "ok"
        else:
            result = "<br>".join(f":x: `{v.path}`: {_md(v.message)}" for v in verdict.violations)
        body.append(f"| `{verdict.commit.sha[:10]}` {_md(verdict.commit.summary[:60])} | {_md(verdict.actor)} | {files} | {result} |")
    body.append("")
    body.append("#### Selection")
    body.append("")
    if review.selections or review.removed_builds:
        body.append("| build | change | state | where | confidence | why |")
        body.append("|---|---|---|---|---|---|")
        for s in review.selections:
            d = s.decision
            where = f"`{d.provider}/{d.pool}`" if d.pool else "-"
            body.append(f"| `{s.name}` | {s.change} | {d.state} | {where} | {d.confidence:.2f} | {_md(d.reason)} |")
        for name in review.removed_builds:
            body.append(f"| `{name}` | removed | - | - | - | objects pruned; a running run is cancelled |")
    else:
        body.append("No build added or changed.")
    body.append("")
    body.append(f"#### Plan: {review.plan.summary()}")
    body.append("")
    for cluster, entries in _by_cluster(review.plan.changes).items():
        counts = ", ".join(f"{n} {a}" for a, n in _counts(entries))
        body.append(f"<details><summary><b>{cluster}</b>: {counts}</summary>")
        body.append("")
        for entry in entries:
            body.append(f"- {entry.action} `{entry.key}`{_md(_owner_text(entry))}")
        body.append("")
        body.append("```diff")
        body.extend(e.diff.rstrip("\n") for e in entries)
        body.append("```")
        body.append("</details>")
        body.append("")
    for note in review.notes:
        body.append(f"> {_md(note)}")
    tail = ["", "<sub>Generated by `image-factory review`. Exit code 0: mergeable; 1: errors or violations.</sub>"]
    return _fit("\n".join(head), "\n".join(body), "\n".join(tail), limit)


def _counts(entries):
    seen: dict[str, int] = {}
    for e in entries:
        seen[e.action] = seen.get(e.action, 0) + 1
    return sorted(seen.items())


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _fit(head: str, body: str, tail: str, limit: int) -> str:
    """Keep the comment under ``limit`` characters: cut the body at a line, say so, and
    close any open code block and <details>."""
    whole = f"{head}\n{body}{tail}\n"
    if len(whole) <= limit:
        return whole
    note = "\n```\n</details>\n\n> :warning: This comment was trimmed to fit GitHub's 65,536-character limit; " \
           "run `image-factory review` locally (or `--format json`) for the whole report.\n"
    room = limit - len(head) - len(tail) - len(note) - 2
    cut = body[:room]
    cut = cut[: cut.rfind("\n")] if "\n" in cut else cut
    in_code = cut.count("```") % 2 == 1
    closing = note if in_code else note.replace("\n```\n</details>\n", "\n" + "</details>\n" * _open_details(cut))
    return f"{head}\n{cut}{closing}{tail}\n"


def _open_details(text: str) -> int:
    return max(0, text.count("<details>") - text.count("</details>"))


def review_json(review: Any) -> dict:
    return {
        "mergeable": review.mergeable,
        "verdict": verdict_line(review),
        "base": review.base, "head": review.head, "mergeBase": review.merge_base,
        "problems": [p.as_dict() for p in review.problems],
        "commits": [{"commit": v.commit.sha, "summary": v.commit.summary, "actor": v.actor,
                     "files": [{"path": f.path, "status": f.status} for f in v.commit.files],
                     "violations": [x.as_dict() for x in v.violations]} for v in review.verdicts],
        "selections": [{"build": s.name, "path": s.path, "change": s.change, **s.decision.to_dict()}
                       for s in review.selections],
        "removedBuilds": list(review.removed_builds),
        "plan": review.plan.as_dict(),
        "notes": list(review.notes),
    }
