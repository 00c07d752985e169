"""Load the desired state: a tree of files -> a validated ``Snapshot``.

Work is keyed on content: each file's result (parsed, validated per document) is cached by
Git blob id, and a whole snapshot by the root tree id, so a pass over an unchanged
repository parses nothing and a pass after one edit parses one file. One bad file never
stops the others: its problems are collected and the rest is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """Loads snapshots, remembering per-blob results between calls."""

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
        entries = tree.entries()
        missing = [e for e in entries if (e.blob, expected_kind(e.path)[0]) not in self._blobs]
        if missing:
            small = [e for e in missing if e.size <= MAX_FILE_BYTES]
            contents = tree.read(small) if small else {}
            for entry in missing:
                kind = expected_kind(entry.path)[0]
                if entry.size > MAX_FILE_BYTES:
                    result = _FileResult((), (ParseProblem(1, "", f"file is {entry.size:,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MiB)"),))
                else:
                    result = _check_file(contents[entry.blob], kind)
                    self.parsed += 1
                self._blobs[(entry.blob, kind)] = result
        snap = self._assemble(tree.revision, entries)
        self._last = (key, snap)
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


def _check_file(data: bytes, kind: str | None) -> _FileResult:
    parsed = parse(data)
    checked = tuple(check_document(doc, kind) for doc in parsed.documents)
    if kind == "FactoryConfig" and len(checked) > 1:
        extra = ParseProblem(checked[1].line, "", "factory.yaml holds exactly one FactoryConfig document")
        return _FileResult(checked, parsed.problems + (extra,))
    return _FileResult(checked, parsed.problems)
