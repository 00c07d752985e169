"""Load the desired state: a tree of files -> a validated ``Snapshot``.

Work is keyed on content: each file's result (parsed, validated per document) is cached by
Git blob id, and a whole snapshot by the root tree id, so a pass over an unchanged
repository parses nothing and a pass after one edit parses one file. One bad file never
stops the others: its problems are collected and the rest is loaded.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

from ..problems import Problem
from ..validation.objects import Checked, check_document
from ..validation.references import check_references
from .trees import DirectoryTree, FileEntry, GitTree
from .yamldocs import MAX_FILE_BYTES, ParseProblem, parse


@dataclass(frozen=True)
class Entity:
    """A valid object of the repository and where it came from."""

    kind: str
    name: str
    path: str
    line: int
    blob: str
    model: Any  # the frozen pydantic model
    lines: dict = field(repr=False, compare=False, hash=False)
    team: str | None = None  # BuildRequests: the folder under builds/
    doc: int = 0  # index of the document in its file (multi-document files)

    @property
    def spec(self) -> Any:
        return self.model.spec


@dataclass(frozen=True)
class Snapshot:
    revision: str | None
    factory: Entity | None
    providers: dict[str, Entity]
    pools: dict[str, Entity]
    builds: dict[str, Entity]
    problems: tuple[Problem, ...]
    # path -> blob of every file looked at (for change detection by later passes)
    files: dict[str, str]
    # paths of files with at least one document that failed validation
    invalid: frozenset[str] = frozenset()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def valid(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {"factory": int(self.factory is not None), "providers": len(self.providers),
                "pools": len(self.pools), "builds": len(self.builds)}


def expected_kind(path: str) -> tuple[str | None, str | None, str | None]:
    """(kind, team, problem) for a path of the layout."""
    parts = path.split("/")
    if len(parts) == 1:
        return "FactoryConfig", None, None
    top = parts[0]
    if top == "providers":
        return "Provider", None, None
    if top == "pools":
        return "Pool", None, None
    if top == "builds":
        if len(parts) < 3:
            return "BuildRequest", None, "build requests live in builds/<team>/; move this file into its team's folder"
        return "BuildRequest", parts[1], None
    return None, None, None


@dataclass(frozen=True)
class _FileResult:
    checked: tuple[Checked, ...]
    problems: tuple[ParseProblem, ...]


class Loader:
    """Loads snapshots, remembering per-blob results between calls.

    Only the results of the files of the last tree loaded are kept: a long-lived process
    (``image-factory run``) would otherwise hold every version of every file it ever saw
    (after a status commit that touches 10,000 files, twice the repository). Results the
    new tree does not use are dropped before its new files are parsed, so a load never
    holds two full repositories at once.
    """

    # Blobs read from Git per batch: the bytes of a batch are held while it is parsed.
    READ_BATCH = 2_500

    def __init__(self) -> None:
        self._blobs: dict[tuple[str, str | None], _FileResult] = {}
        self._last: tuple[Any, Snapshot] | None = None
        self.stat_cache: dict = {}
        self.parsed = 0  # files parsed by the last load (for tests and benchmarks)

    def load_directory(self, root: str) -> Snapshot:
        return self.load(DirectoryTree(root, self.stat_cache))

    def load_revision(self, repo: str, rev: str = "HEAD") -> Snapshot:
        return self.load(GitTree(repo, rev))

    def load(self, tree: DirectoryTree | GitTree) -> Snapshot:
        self.parsed = 0
        key = tree.key
        if key is not None and self._last is not None and self._last[0] == key:
            snap = self._last[1]
            if snap.revision != tree.revision:
                snap = Snapshot(tree.revision, snap.factory, snap.providers, snap.pools, snap.builds, snap.problems,
                                snap.files, snap.invalid)
            return snap
        self._last = None  # a different tree: let the old snapshot go before parsing the new one
        # A load makes many long-lived objects and no reference cycles: the cyclic collector
        # would walk the growing heap again and again and free nothing (20-30% of a cold
        # load's CPU). Paused, as selection does; _freeze collects once afterwards.
        collecting = gc.isenabled()
        gc.disable()
        try:
            entries = tree.entries()
            keys = [(e.blob, expected_kind(e.path)[0]) for e in entries]
            wanted = set(keys)
            blobs = self._blobs
            if any(k not in wanted for k in blobs):
                self._blobs = blobs = {k: v for k, v in blobs.items() if k in wanted}
            missing = list({k: e for e, k in zip(entries, keys) if k not in blobs}.items())
            del wanted
            for start in range(0, len(missing), self.READ_BATCH):
                batch = missing[start:start + self.READ_BATCH]
                small = [e for _k, e in batch if e.size <= MAX_FILE_BYTES]
                contents = tree.read(small) if small else {}
                for blob_key, entry in batch:
                    if entry.size > MAX_FILE_BYTES:
                        result = _FileResult((), (ParseProblem(1, "", f"file is {entry.size:,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MiB)"),))
                    else:
                        result = _check_file(contents[entry.blob], blob_key[1])
                        self.parsed += 1
                    blobs[blob_key] = result
                del contents
            snap = self._assemble(tree.revision, entries)
        finally:
            if collecting:
                gc.enable()
        self._last = (key, snap)
        if self.parsed >= FREEZE_AFTER:
            _freeze()
        return snap

    def _assemble(self, revision: str | None, entries: Iterable[FileEntry]) -> Snapshot:
        problems: list[Problem] = []
        by_kind: dict[str, dict[str, Entity]] = {"FactoryConfig": {}, "Provider": {}, "Pool": {}, "BuildRequest": {}}
        files: dict[str, str] = {}
        invalid: set[str] = set()
        # Names of objects whose file failed: references to them are not "dangling".
        broken: dict[str, set[str]] = {"Provider": set(), "Pool": set(), "BuildRequest": set()}
        for entry in entries:
            files[entry.path] = entry.blob
            kind, team, misplaced = expected_kind(entry.path)
            result = self._blobs[(entry.blob, kind)]
            for p in result.problems:
                problems.append(Problem(entry.path, p.line, p.field, p.message))
            if misplaced:
                problems.append(Problem(entry.path, 1, "", misplaced))
                invalid.add(entry.path)
                continue
            if result.problems:
                invalid.add(entry.path)
            for checked in result.checked:
                for p in checked.problems:
                    problems.append(Problem(entry.path, p.line, p.field, p.message))
                if checked.model is None or result.problems:
                    invalid.add(entry.path)
                    if checked.name and checked.kind in broken:
                        broken[checked.kind].add(checked.name)
                    continue
                entity = Entity(checked.kind, checked.name, entry.path, checked.line, entry.blob, checked.model,
                                checked.lines, team, checked.index)
                seen = by_kind[checked.kind].get(checked.name)
                if seen is not None:
                    problems.append(Problem(entry.path, checked.lines.get(("metadata", "name"), checked.line), "metadata.name",
                                            f"{checked.kind} '{checked.name}' is already defined at {seen.path}:{seen.line}; names must be unique"))
                    invalid.add(entry.path)
                    continue
                by_kind[checked.kind][checked.name] = entity
        factories = list(by_kind["FactoryConfig"].values())
        factory = factories[0] if factories else None
        if not any(p.split("/")[0] in ("factory.yaml", "factory.yml") for p in files):
            problems.append(Problem("factory.yaml", 1, "", "missing: the repository needs a factory.yaml with roles and members"))
        problems.extend(check_references(factory, by_kind["Provider"], by_kind["Pool"], by_kind["BuildRequest"], broken))
        problems.sort(key=lambda p: (p.path, p.line, p.field, p.message))
        return Snapshot(revision, factory, by_kind["Provider"], by_kind["Pool"], by_kind["BuildRequest"], tuple(problems),
                        files, frozenset(invalid))


# A load that parsed at least this many files moves what the process holds out of the
# cyclic garbage collector's reach (``gc.freeze``): see ``_freeze``.
FREEZE_AFTER = 1_000


def _freeze() -> None:
    """Collect once, then freeze every object the process holds.

    Loaded models are long-lived and hold no reference cycles (a model that is dropped is
    freed by its reference count, frozen or not), but each full collection walks all of
    them: at 10,000 builds about half a million objects, 0.5 s, in nearly every pass. Frozen,
    they are not walked again. The collection first frees whatever cyclic garbage there is,
    so nothing collectable is frozen with them."""
    gc.collect()
    gc.freeze()


def _check_file(data: bytes, kind: str | None) -> _FileResult:
    parsed = parse(data)
    checked = tuple(_kept(check_document(doc, kind)) for doc in parsed.documents)
    if kind == "FactoryConfig" and len(checked) > 1:
        extra = ParseProblem(checked[1].line, "", "factory.yaml holds exactly one FactoryConfig document")
        return _FileResult(checked, parsed.problems + (extra,))
    return _FileResult(checked, parsed.problems)


# --- what a cached result keeps of a document's field lines ----------------------------------
#
# A document's problems are found (with their lines) when it is checked; afterwards its
# lines serve only the checks across objects (references, duplicate names), which point at
# ``metadata`` and ``spec``. ``status`` (written by the reconciler, often most of a build's
# file) is not kept.


def _kept(checked: Checked) -> Checked:
    if checked.model is None:
        return checked  # its problems are made already
    lines = checked.lines
    without = getattr(lines, "without", None)  # yamldocs.Lines (its paths are not built yet)
    if without is not None:
        kept = without("status")
        return checked if kept is lines else replace(checked, lines=kept)
    return replace(checked, lines={path: line for path, line in lines.items() if not path or path[0] != "status"})
