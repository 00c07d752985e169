"""Who changed what, and were they allowed to? (seed 000's permission model, per commit)

Rules, for every file a commit adds (A), modifies (M) or deletes (D):

| path                | needs                                                              |
|---------------------|--------------------------------------------------------------------|
| factory.yaml        | infrastructure:configure                                           |
| providers/, pools/  | infrastructure:configure; deleting one needs infrastructure:manage |
| builds/<team>/      | membership of <team> and build:create:with-infra or                |
|                     | infrastructure:view; or infrastructure:manage (admins)             |
| a build with force  | infrastructure:manage, whenever force is turned on (or stays on    |
|                     | while the rest of the spec changes)                                |
| placement, or       | infrastructure:select, when set or changed (seed: users choose     |
| infrastructure set  | only among offered options; selection checks what is offered)      |

Roles are read from factory.yaml *as it was before the commit* (its parent), so nobody can
grant themselves a role in the same change that uses it. The actor is the commit's author
(``identity.source: author``) or, with ``identity.source: signature``, only the principal of
a signature that Git verified; an unsigned or badly signed commit then counts as no one.
Commits made by the reconciler's own write-back identity that touch only ``status:`` blocks
are skipped by the caller (see ``reconciler.source``), not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..source.yamldocs import parse
from .roles import permissions_of, teams_of

NOBODY = "(no verified identity)"


@dataclass(frozen=True)
class FileChange:
    path: str
    status: str  # "A", "M" or "D" (renames arrive as D + A)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parent: str | None
    author: str  # e-mail
    committer: str
    summary: str
    files: tuple[FileChange, ...]
    # The verified signer principal (SSH allowed-signers principal or GPG uid e-mail), or None.
    signer: str | None = None
    signature: str = "none"  # "good", "bad", "none"


@dataclass(frozen=True)
class Violation:
    commit: str
    summary: str
    actor: str
    path: str
    permission: str
    message: str

    def __str__(self) -> str:
        return f"{self.commit[:12]} ({self.summary[:60]}): {self.path}: {self.actor} {self.message}"

    def as_dict(self) -> dict:
        return {"commit": self.commit, "summary": self.summary, "actor": self.actor, "path": self.path,
                "permission": self.permission, "message": self.message}


@dataclass(frozen=True)
class CommitVerdict:
    commit: CommitInfo
    actor: str
    violations: tuple[Violation, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return not self.violations


def actor_of(commit: CommitInfo, factory: Any) -> str:
    """The identity a commit counts as, under the factory's identity policy."""
    source = "author"
    if factory is not None:
        source = getattr(factory, "model", factory).spec.identity.source
    if source == "signature":
        return commit.signer if (commit.signature == "good" and commit.signer) else NOBODY
    return commit.author


def authorize(
    commits: list[CommitInfo],
    factory_at: Callable[[str | None], Any],
    read: Callable[[str | None, str], bytes | None],
) -> list[CommitVerdict]:
    """Check every commit. ``factory_at(rev)`` gives the FactoryConfig at a revision (None
    for none); ``read(rev, path)`` gives a file's bytes at a revision (None if absent)."""
    verdicts = []
    for commit in commits:
        factory = factory_at(commit.parent)
        actor = actor_of(commit, factory)
        held = permissions_of(factory, actor) if actor != NOBODY else frozenset()
        teams = teams_of(factory, actor) if actor != NOBODY else frozenset()
        found = []
        for change in commit.files:
            for permission, message in _requirements(change, commit, read):
                if not _satisfied(permission, held, teams, change.path):
                    found.append(Violation(commit.sha, commit.summary, actor, change.path, permission, message))
        verdicts.append(CommitVerdict(commit, actor, tuple(found)))
    return verdicts


def _team_of(path: str) -> str | None:
    parts = path.split("/")
    return parts[1] if len(parts) >= 3 and parts[0] == "builds" else None


def _satisfied(permission: str, held: frozenset, teams: frozenset, path: str) -> bool:
    if permission == "team":
        if "infrastructure:manage" in held:
            return True
        return _team_of(path) in teams and bool(held & {"build:create:with-infra", "infrastructure:view"})
    return permission in held


def _requirements(change: FileChange, commit: CommitInfo, read) -> list[tuple[str, str]]:
    path, status = change.path, change.status
    top = path.split("/", 1)[0]
    if not path.endswith((".yaml", ".yml")) and top != "factory.pub":
        return []
    if top in ("factory.yaml", "factory.yml"):
        return [("infrastructure:configure", "changed factory.yaml, which needs infrastructure:configure")]
    if top in ("providers", "pools"):
        what = "a provider" if top == "providers" else "a pool"
        if status == "D":
            return [("infrastructure:manage", f"deleted {what}, which needs infrastructure:manage")]
        return [("infrastructure:configure", f"{'added' if status == 'A' else 'changed'} {what}, which needs infrastructure:configure")]
    if top == "builds":
        team = _team_of(path) or "?"
        out = [("team", f"changed a build of team {team}, which needs membership of team {team} (or infrastructure:manage)")]
        if status != "D":
            before, after = _specs(read(commit.parent, path)) if commit.parent else {}, _specs(read(commit.sha, path))
            if _force_set(before, after):
                out.append(("infrastructure:manage", "set force: true (admin override), which needs infrastructure:manage"))
            if _placement_set(before, after):
                out.append(("infrastructure:select",
                            "chose infrastructure or a placement, which needs infrastructure:select"))
        return out
    return []


def _placement_set(before: dict[str, dict], after: dict[str, dict]) -> bool:
    """True when the commit sets or changes a placement or a non-auto infrastructure."""
    for name, spec in after.items():
        old = before.get(name, {})
        for key in ("placement", "infrastructure"):
            value = spec.get(key)
            if value not in (None, "auto") and value != old.get(key):
                return True
    return False


def _force_set(before: dict[str, dict], after: dict[str, dict]) -> bool:
    """True when the commit turns force on, or changes a spec that has force on."""
    for name, spec in after.items():
        if spec.get("force") is True:
            old = before.get(name)
            if old is None or old.get("force") is not True or _without_status(old) != _without_status(spec):
                return True
    return False


def _specs(data: bytes | None) -> dict[str, dict]:
    if not data:
        return {}
    out = {}
    for doc in parse(data).documents:
        if isinstance(doc.data, dict) and isinstance(doc.data.get("spec"), dict):
            meta = doc.data.get("metadata") if isinstance(doc.data.get("metadata"), dict) else {}
            out[str(meta.get("name", doc.index))] = doc.data["spec"]
    return out


def _without_status(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "status"}
