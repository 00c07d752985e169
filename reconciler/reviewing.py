"""``review``: everything a reviewer needs to decide whether a change to the repository can merge.

For ``base..head`` of a local clone: (1) validation of head, (2) who changed what in every
commit, checked against factory.yaml's roles *as of the base*, (3) selection for every added
or changed build, (4) the plan: what would change on which cluster (head rendered against
base), and (5) a verdict. No cluster is contacted; nothing is written.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError
from .planning import Plan, make_plan
from .policy.authorizing import CommitInfo, CommitVerdict, FileChange, authorize
from .problems import Problem
from .source.loading import Loader
from .source.trees import clean_env
from .source.yamldocs import parse
from .validation.objects import check_document

_INFRA_TOPS = ("factory.yaml", "factory.yml", "providers", "pools")


@dataclass(frozen=True)
class BuildSelection:
    name: str
    path: str
    change: str  # added | changed
    decision: Any  # selection Decision


@dataclass(frozen=True)
class Review:
    base: str
    head: str
    merge_base: str
    problems: tuple[Problem, ...]
    verdicts: tuple[CommitVerdict, ...]
    selections: tuple[BuildSelection, ...]
    plan: Plan
    removed_builds: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def violations(self):
        return tuple(v for verdict in self.verdicts for v in verdict.violations)

    @property
    def rejected(self) -> tuple[BuildSelection, ...]:
        return tuple(s for s in self.selections if s.decision.state == "Rejected")

    @property
    def mergeable(self) -> bool:
        return not self.problems and not self.violations and not self.rejected

    def blockers(self) -> list[str]:
        out = []
        if self.problems:
            out.append(f"{len(self.problems)} validation error{'s' * (len(self.problems) != 1)}")
        if self.violations:
            out.append(f"{len(self.violations)} permission violation{'s' * (len(self.violations) != 1)}")
        if self.rejected:
            out.append(f"{len(self.rejected)} build{'s' * (len(self.rejected) != 1)} would be rejected")
        return out


class _Repo:
    """Read-only access to a local clone: commits, files at revisions (no checkout)."""

    def __init__(self, path: str) -> None:
        from .source.remote import Mirror

        gitdir = self._git(path, "rev-parse", "--absolute-git-dir", what="a Git repository").strip()
        self.path = path
        # Used read-only (no fetch or push, so no lock is taken in the user's repository).
        self.mirror = Mirror(url=path, workdir=gitdir)
        self._factories: dict[str, Any] = {}
        self._files: dict[tuple[str, str], bytes | None] = {}

    @staticmethod
    def _git(path: str, *args: str, what: str = "") -> str:
        proc = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True, env=clean_env())
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
            raise UsageError(f"{path}: {what or 'git ' + args[0]}: {detail}")
        return proc.stdout

    def resolve(self, rev: str) -> str:
        return self._git(self.path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", what=f"revision {rev} not found").strip()

    def merge_base(self, a: str, b: str) -> str:
        return self._git(self.path, "merge-base", a, b, what=f"no common history between {a} and {b}").strip()

    def prefetch(self, rev: str, paths: list[str]) -> None:
        """Read many files of one revision in one go (authorization reads each twice)."""
        wanted = [p for p in paths if (rev, p) not in self._files]
        if wanted:
            found = self.mirror.read_files(rev, wanted)
            self._files.update({(rev, p): found.get(p) for p in wanted})

    def read(self, rev: str | None, path: str) -> bytes | None:
        if rev is None:
            return None
        if (rev, path) not in self._files:
            self.prefetch(rev, [path])
        return self._files[(rev, path)]

    def factory_at(self, rev: str | None) -> Any:
        if rev is None:
            return None
        data = self.read(rev, "factory.yaml")
        if data is None:
            return None
        key = data.decode("utf-8", "replace")
        if key not in self._factories:
            parsed = parse(data)
            checked = [check_document(d, "FactoryConfig") for d in parsed.documents]
            self._factories[key] = checked[0].model if checked and checked[0].model is not None else None
        return self._factories[key]


def review(path: str, base: str, head: str, loader: Loader | None = None) -> Review:
    from .desired import compute_desired

    repo = _Repo(path)
    base_sha, head_sha = repo.resolve(base), repo.resolve(head)
    mb = repo.merge_base(base_sha, head_sha)
    loader = loader or Loader()
    head_snap = loader.load_revision(path, head_sha)
    base_snap = loader.load_revision(path, mb)

    # 2. permissions, commit by commit
    records = repo.mirror.commits(mb, head_sha)
    base_factory = repo.factory_at(mb)
    signatures = _signatures(repo, base_factory, mb, [r.sha for r in records])
    commits = [CommitInfo(r.sha, r.parent, r.author_email, r.committer_email, r.summary,
                          tuple(FileChange(f.path, f.status) for f in r.files),
                          *signatures.get(r.sha, (None, "none")))
               for r in records if len(r.parents) <= 1 or r.files]
    for commit in commits:
        paths = [f.path for f in commit.files if f.path.startswith("builds/")]
        repo.prefetch(commit.sha, paths)
        if commit.parent:
            repo.prefetch(commit.parent, paths)
    verdicts = tuple(authorize(commits, repo.factory_at, repo.read))

    # 3. selection for added or changed builds; 4. the plan, head against base
    changed = repo.mirror.changed_files(mb, head_sha)
    infra_changed = any(c.path.split("/", 1)[0] in _INFRA_TOPS for c in changed)
    by_path_head = {e.path: n for n, e in head_snap.builds.items()}
    by_path_base = {e.path: n for n, e in base_snap.builds.items()}
    touched = {by_path_head[c.path] for c in changed if c.path in by_path_head}
    touched |= {by_path_base[c.path] for c in changed if c.path in by_path_base}
    scope = None if infra_changed else sorted(touched)
    head_desired = compute_desired(head_snap, builds=scope, revision=head_sha)
    base_desired = compute_desired(base_snap, builds=scope, revision=mb)
    head_objects, base_objects = head_desired.clusters, base_desired.clusters
    if scope is not None:
        # Only some builds were rendered on each side, so objects shared by many builds
        # (team namespace, RBAC, Pipelines) would look created or pruned; they only change
        # with providers, pools, factory.yaml or templates, which switch scope off.
        head_objects, base_objects = _per_build(head_objects), _per_build(base_objects)
    plan = make_plan(head_objects, base_objects, sources=head_desired.sources())

    selections = []
    for name in sorted(touched):
        entity = head_snap.builds.get(name)
        if entity is None or name not in head_desired.decisions:
            continue
        change = "added" if name not in base_snap.builds else "changed"
        selections.append(BuildSelection(name, entity.path, change, head_desired.decisions[name]))
    removed = tuple(sorted(n for n in touched if n in base_snap.builds and n not in head_snap.builds
                           and base_snap.builds[n].path not in head_snap.invalid))
    notes = []
    if scope is not None:
        notes.append(f"Plan limited to the {len(scope)} build{'s' * (len(scope) != 1)} this change touches "
                     "and their own objects (no provider, pool or factory.yaml change).")
    render_errors = {**head_desired.rendered.errors}
    for what, reason in sorted(render_errors.items()):
        notes.append(f"{what} could not be rendered: {reason}")
    return Review(base, head, mb, head_snap.errors, verdicts, tuple(selections), plan, removed, tuple(notes))


def _per_build(clusters: dict) -> dict:
    from .planning import BUILD_LABEL

    return {c: tuple(o for o in objs if ((o.get("metadata") or {}).get("labels") or {}).get(BUILD_LABEL))
            for c, objs in clusters.items()}


def _signatures(repo: _Repo, factory: Any, base: str, shas: list[str]) -> dict[str, tuple[str | None, str]]:
    """sha -> (signer, good|bad|none) when the base's factory.yaml asks for signed identities."""
    if factory is None or factory.spec.identity.source != "signature":
        return {}
    from .source.signatures import verify

    policy = factory.spec.identity
    signers = repo.read(base, policy.allowedSignersFile) if policy.allowedSignersFile else None
    keyring = repo.read(base, policy.gpgKeyring) if policy.gpgKeyring else None
    checks = verify(repo.mirror.path, shas, allowed_signers=signers, gpg_keyring=keyring)
    return {sha: (c.signer, c.status) for sha, c in checks.items()}
