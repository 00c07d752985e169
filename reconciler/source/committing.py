"""Status commits: built without a working tree, pushed without ever losing anyone's commit.

``create_commit`` turns {path: new bytes} into a commit on top of a base: blobs are
written straight into the object store (gitdb, no process per file), the tree is built in
a temporary index (``GIT_INDEX_FILE``: ``read-tree`` + ``update-index --index-info`` +
``write-tree``) and the commit by ``git commit-tree`` (``-S`` with an SSH key when
configured). Nothing is committed when every edited file is already byte-identical.

``push_status`` is the whole write-back loop: fetch, take the branch tip, let the caller
derive its edits on that tip, commit, push as a fast-forward; on "rejected" (someone pushed
meanwhile) fetch again, re-derive on the new tip and retry with jittered exponential
backoff, a bounded number of times. It never force-pushes and never rewrites a commit, so
every commit anyone pushed stays in the branch's history.

A status commit carries the trailer ``Source-Revision: <sha>`` and the write-back identity
as author and committer; ``is_status_commit`` recognises it (and, given a content check,
that it really changed nothing but status blocks) so the caller neither re-renders for it
nor holds it to the authorization rules.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import SourceError
from .remote import EMPTY_TREE, REMOTE, ChangedFile, CommitRecord, Mirror, PushOutcome, check_branch_name, ls_tree
from .trees import FileEntry, blob_id, is_relevant, ls_tree_args, parse_ls_tree, read_blobs

TRAILER = "Source-Revision"
_ZERO = "0" * 40


@dataclass(frozen=True)
class Identity:
    """Author and committer of status commits (factory.yaml ``spec.writeBack.author``)."""

    name: str
    email: str

    @classmethod
    def of(cls, value: Any) -> "Identity":
        if isinstance(value, Identity):
            return value
        if isinstance(value, Mapping):
            return cls(str(value["name"]), str(value["email"]))
        return cls(str(value.name), str(value.email))


@dataclass(frozen=True)
class WriteBase:
    """What status edits are derived against: the tree the new commit starts from.

    Also a tree for ``Loader.load`` (``key``, ``revision``, ``entries()``, ``read()``), so the
    caller can load it with its blob cache and compare each file's status to the desired one.

    ``tip``: the branch's current commit (None when the branch does not exist yet);
    ``parents``: the new commit's parents; ``tree``: the base tree (the tip's, or, when
    writing to another branch that lags the source, the tip's merged with the source's
    changes); ``source``: the reconciled revision named in the trailer.
    """

    mirror: Mirror = field(repr=False)
    branch: str
    tip: str | None
    source: str
    parents: tuple[str, ...]
    tree: str

    @property
    def key(self) -> str:
        return self.tree

    @property
    def revision(self) -> str:
        return self.tip or self.source

    @property
    def merges_source(self) -> bool:
        return len(self.parents) == 2

    def entries(self) -> list[FileEntry]:
        return parse_ls_tree(self.mirror.run(*ls_tree_args(self.tree)).stdout)

    def read(self, entries: list[FileEntry]) -> dict[str, bytes]:
        return read_blobs(self.mirror.workdir, [e.blob for e in entries])

    def read_paths(self, paths: Iterable[str]) -> dict[str, bytes | None]:
        """path -> bytes in the base tree (None when the file is not there)."""
        return self.mirror.read_files(self.tree, list(paths))


@dataclass(frozen=True)
class WriteResult:
    """``status``: "pushed", "committed" (push=False), "unchanged" (nothing to commit),
    "rejected" (the branch kept moving: retries exhausted), "declined" (the remote refused
    the push: hook, protected branch), "superseded" (the branch moved and the caller's
    ``yield_to`` said a newer pass will write instead: nothing was pushed, nothing lost)."""

    status: str
    branch: str
    commit: str | None = None
    tip: str | None = None  # the branch tip the last attempt started from
    attempts: int = 0
    files: tuple[str, ...] = ()
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("pushed", "committed", "unchanged")


# --- building a commit ----------------------------------------------------------------------


def status_message(count: int, what: str = "build") -> str:
    return f"status: {count} {what}{'' if count == 1 else 's'} updated"


def create_commit(mirror: Mirror, parents: Iterable[str], base_tree: str, edits: Mapping[str, bytes],
                  identity: Any, message: str, source_revision: str | None = None, *,
                  signing_key: str | None = None) -> tuple[str, tuple[str, ...]] | None:
    """Commit ``base_tree`` with ``edits`` applied, on ``parents``. Returns (commit, paths
    actually changed), or None when there is nothing to edit or every edit is
    byte-identical to the base."""
    parents = tuple(parents)
    identity = Identity.of(identity)
    for path in edits:
        _check_path(path)
    with mirror.locked():
        current = ls_tree(mirror, base_tree, sorted(edits))
        changed = {p: data for p, data in sorted(edits.items()) if p not in current or current[p][1] != blob_id(data)}
        if not changed:
            return None
        shas = write_blobs(mirror, list(changed.values()))
        lines = []
        for (path, data), sha in zip(changed.items(), shas):
            mode = current[path][0] if path in current else "100644"
            lines.append(f"{mode} {sha}\t{path}")
        tree = _write_tree(mirror, base_tree, lines)
        text = message.rstrip() + "\n"
        if source_revision:
            text += f"\n{TRAILER}: {source_revision}\n"
        env = {"GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
               "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email}
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        config = None
        if signing_key:
            if not os.path.isfile(signing_key):
                raise SourceError(f"writeBack.signingKeyFile: {signing_key} is not a readable file")
            args.append("-S")
            config = [("gpg.format", "ssh"), ("user.signingkey", os.path.abspath(signing_key))]
        proc = mirror.run(*args, "-F", "-", input=text.encode(), env=env, config=config)
        return proc.stdout.decode().strip(), tuple(changed)


def write_blobs(mirror: Mirror, datas: list[bytes]) -> list[str]:
    """Store blobs in one ``git fast-import`` (one pack file, not a loose object and a
    process per blob, which costs 100x more on a busy disk); returns their ids."""
    if not datas:
        return []
    stream = [b"feature done\n"]
    for data in datas:
        stream.append(b"blob\ndata %d\n" % len(data))
        stream.append(data)
        stream.append(b"\n")
    stream.append(b"done\n")
    with mirror.locked():
        mirror.run("fast-import", "--quiet", input=b"".join(stream))
    return [blob_id(data) for data in datas]


def _write_tree(mirror: Mirror, base_tree: str, index_info: list[str]) -> str:
    if not index_info:
        return base_tree
    with tempfile.TemporaryDirectory(prefix="if-index-") as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        mirror.run("read-tree", base_tree, env=env)
        mirror.run("update-index", "-z", "--index-info", input=("\0".join(index_info) + "\0").encode(), env=env)
        return mirror.run("write-tree", env=env).stdout.decode().strip()


def _check_path(path: str) -> None:
    parts = path.split("/")
    if (not path or path.startswith("/") or "\\" in path or "\0" in path
            or any(p in ("", ".", "..") or p.lower() == ".git" for p in parts)):
        raise SourceError(f"refusing to write '{path[:100]}': not a plain relative path in the repository")


# --- the base to derive edits on --------------------------------------------------------------


def prepare_base(mirror: Mirror, branch: str, source_revision: str, *, merge_source: bool = False) -> WriteBase:
    """The tree and parents a status commit for ``branch`` starts from.

    Same branch as the source (``merge_source`` False): the tip, whatever it is now
    (commits pushed after the source revision are kept as they are; the caller's edits are
    re-derived on them). Another branch (``merge_source`` True): the write-back branch
    follows the source branch by merging: the tip's tree with every file the source changed
    since they last met taken from the source, and both as parents. A branch that does not
    exist yet starts at the source revision."""
    tip_ref = f"refs/remotes/{REMOTE}/{branch}"
    found = mirror.resolve_many([f"{tip_ref}^{{commit}}", f"{tip_ref}^{{tree}}", f"{source_revision}^{{commit}}",
                                 f"{source_revision}^{{tree}}"])
    tip, tip_tree = found[f"{tip_ref}^{{commit}}"], found[f"{tip_ref}^{{tree}}"]
    source, source_tree = found[f"{source_revision}^{{commit}}"], found[f"{source_revision}^{{tree}}"]
    if source is None or source_tree is None:
        raise SourceError(f"source revision {source_revision[:60]} is not in the mirror; fetch first")
    if tip is None or tip_tree is None:
        return WriteBase(mirror, branch, None, source, (source,), source_tree)
    if not merge_source or mirror.is_ancestor(source, tip):
        return WriteBase(mirror, branch, tip, source, (tip,), tip_tree)
    base = mirror.run("merge-base", tip, source, check=False).stdout.decode().strip()
    changes = mirror.changed_files(base or None, source)
    listing = ls_tree(mirror, source, [c.path for c in changes if c.status != "D"])
    lines = []
    for change in changes:
        if change.status == "D" or change.path not in listing:
            lines.append(f"0 {_ZERO}\t{change.path}")
        else:
            mode, blob = listing[change.path]
            lines.append(f"{mode} {blob}\t{change.path}")
    with mirror.locked():
        tree = _write_tree(mirror, tip_tree, lines)
    return WriteBase(mirror, branch, tip, source, (tip, source), tree)


# --- the loop -----------------------------------------------------------------------------


def push_status(mirror: Mirror, branch: str, derive: Callable[[WriteBase], Mapping[str, bytes]], identity: Any,
                source_revision: str, message: str | Callable[[int], str] | None = None, *,
                signing_key: str | None = None, merge_source: bool = False, push: bool = True,
                attempts: int = 8, backoff: float = 0.25, max_backoff: float = 8.0, fetch_first: bool = True,
                sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
                yield_to: Callable[[], bool] | None = None) -> WriteResult:
    """Commit the caller's status edits on the tip of ``branch`` and push them.

    ``derive(base)`` returns {path: new bytes} computed on ``base`` (a ``WriteBase``; read
    files with ``base.read_paths`` or load it with a ``Loader``); it is called again on the
    new tip after every rejected push, so it must derive from the base it is given.
    ``message`` is text or a function of the number of changed files (default
    "status: N builds updated"); the ``Source-Revision`` trailer is added here.
    ``yield_to()``, asked after a rejected push, True: do not retry (a newer pass, which will
    derive the status again, is waiting behind this one; or the process is stopping).
    """
    check_branch_name(branch)
    rng = rng or random.Random()
    last: WriteBase | None = None
    commit = None
    detail = ""
    for attempt in range(1, max(1, attempts) + 1):
        if attempt > 1 or fetch_first:
            mirror.fetch()
        base = prepare_base(mirror, branch, source_revision, merge_source=merge_source)
        last = base
        edits = dict(derive(base) or {})
        if not edits:
            return WriteResult("unchanged", branch, None, base.tip, attempt)
        text = message(len(edits)) if callable(message) else (message or status_message(len(edits)))
        made = create_commit(mirror, base.parents, base.tree, edits, identity, text, base.source,
                             signing_key=signing_key)
        if made is None:
            return WriteResult("unchanged", branch, None, base.tip, attempt)
        commit, files = made
        if not push:
            return WriteResult("committed", branch, commit, base.tip, attempt, files)
        outcome: PushOutcome = mirror.push(commit, branch)
        if outcome.ok:
            return WriteResult("pushed", branch, commit, base.tip, attempt, files, outcome.detail)
        if outcome.kind == "declined":
            return WriteResult("declined", branch, commit, base.tip, attempt, files, outcome.detail)
        detail = outcome.detail
        if yield_to is not None and yield_to():
            return WriteResult("superseded", branch, None, base.tip, attempt, (), detail)
        if attempt < attempts:
            # Full jitter: passes of several replicas (or a busy user) do not collide in step.
            sleep(rng.uniform(0, min(max_backoff, backoff * (2 ** (attempt - 1)))))
    return WriteResult("rejected", branch, commit, last.tip if last else None, attempts, (), detail)


# --- recognising our own commits ------------------------------------------------------------


def is_status_commit(mirror: Mirror, commit: CommitRecord, identity: Any,
                     status_only: Callable[[bytes | None, bytes | None], bool] | None = None) -> bool:
    """True for a commit the write-back made: one parent, the write-back identity as author
    and committer, a ``Source-Revision`` trailer, and only modified YAML files of the
    layout. With ``status_only`` (e.g. ``reconciler.status.only_status_changed``) each
    file's two versions are also compared, so a commit that merely *claims* to be ours
    (anyone can set an author and a trailer) but changes a spec is not skipped."""
    identity = Identity.of(identity)
    if len(commit.parents) != 1:
        return False
    if commit.author_email != identity.email or commit.committer_email != identity.email:
        return False
    if not re.fullmatch(r"[0-9a-f]{40}", (commit.trailers.get(TRAILER) or [""])[-1]):
        return False
    if not commit.files or any(f.status != "M" or not is_relevant(f.path) for f in commit.files):
        return False
    if status_only is None:
        return True
    paths = [f.path for f in commit.files]
    before = mirror.read_files(commit.parents[0], paths)
    after = mirror.read_files(commit.sha, paths)
    return all(status_only(before[p], after[p]) for p in paths)


@dataclass(frozen=True)
class ForeignChanges:
    """What others changed in a range: their commits and the union of their files."""

    commits: tuple[CommitRecord, ...]
    ours: tuple[CommitRecord, ...]
    paths: frozenset[str]

    @property
    def nothing(self) -> bool:
        return not self.commits


def foreign_changes(mirror: Mirror, old: str | None, new: str, identity: Any,
                    status_only: Callable[[bytes | None, bytes | None], bool] | None = None,
                    known: frozenset[str] | set[str] = frozenset()) -> ForeignChanges:
    """Commits in ``old..new`` that are not status commits, and the paths they touched:
    what the caller must re-render and authorize. A range of only our commits is empty.
    ``known``: status commits the caller made itself (not read again to verify them)."""
    commits = mirror.commits(old, new)
    theirs, ours = [], []
    for commit in commits:
        mine = commit.sha in known or is_status_commit(mirror, commit, identity, status_only)
        (ours if mine else theirs).append(commit)
    paths = frozenset(f.path for c in theirs for f in c.files)
    return ForeignChanges(tuple(theirs), tuple(ours), paths)


__all__ = ["TRAILER", "ChangedFile", "ForeignChanges", "Identity", "WriteBase", "WriteResult", "create_commit",
           "foreign_changes", "is_status_commit", "prepare_base", "push_status", "status_message", "EMPTY_TREE"]
