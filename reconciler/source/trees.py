"""List the repository's files with their Git blob ids, from a directory or a Git revision.

Both forms give the same thing: ``(path, blob id, size)`` per relevant file and a way to
read blobs. Blob ids are what the loader caches on, so an unchanged file is never parsed
twice. Reading a revision never checks anything out (``git ls-tree`` + ``git cat-file
--batch``); a directory is hashed the way Git would, with a stat cache in front so a warm
pass reads nothing.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

from ..errors import SourceError, UsageError

# What the loader looks at: the four places of the layout.
ROOTS = ("factory.yaml", "factory.yml", "providers", "pools", "builds")
YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, with "/" separators
    blob: str  # git blob id (sha1 hex)
    size: int


def is_relevant(path: str) -> bool:
    top = path.split("/", 1)[0]
    return top in ROOTS and path.endswith(YAML_SUFFIXES)


def blob_id(data: bytes) -> str:
    digest = hashlib.sha1(b"blob %d\0" % len(data))
    digest.update(data)
    return digest.hexdigest()


class DirectoryTree:
    """A working directory (not necessarily a Git checkout)."""

    def __init__(self, root: str, stat_cache: dict | None = None) -> None:
        if not os.path.isdir(root):
            raise UsageError(f"{root}: no such directory")
        self.root = os.path.abspath(root)
        self.revision: str | None = None
        # (path) -> (mtime_ns, size, ino, blob); shared across passes by the caller.
        self._stat_cache = stat_cache if stat_cache is not None else {}
        self._fresh: dict[str, bytes] = {}

    @property
    def key(self) -> None:
        return None  # a directory has no content address; the loader compares entries

    def entries(self) -> list[FileEntry]:
        out: list[FileEntry] = []
        for top in ROOTS:
            full = os.path.join(self.root, top)
            if os.path.isfile(full):
                out.append(self._entry(top, full))
            elif os.path.isdir(full):
                self._walk(full, top, out)
        return out

    def _walk(self, directory: str, rel: str, out: list[FileEntry]) -> None:
        with os.scandir(directory) as it:
            for item in sorted(it, key=lambda e: e.name):
                if item.name.startswith("."):
                    continue
                path = f"{rel}/{item.name}"
                if item.is_dir(follow_symlinks=False):
                    self._walk(item.path, path, out)
                elif item.is_file(follow_symlinks=False) and item.name.endswith(YAML_SUFFIXES):
                    out.append(self._entry(path, item.path, item.stat()))

    def _entry(self, path: str, full: str, st: os.stat_result | None = None) -> FileEntry:
        st = st or os.stat(full)
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        cached = self._stat_cache.get(path)
        if cached and cached[0] == sig:
            return FileEntry(path, cached[1], st.st_size)
        if st.st_size > (1 << 20):
            # Do not read huge files just to hash them; the size says enough.
            blob = f"size:{st.st_size}:{path}"
        else:
            with open(full, "rb") as fh:
                data = fh.read()
            blob = blob_id(data)
            self._fresh[blob] = data
        self._stat_cache[path] = (sig, blob)
        return FileEntry(path, blob, st.st_size)

    def read(self, entries: list[FileEntry]) -> dict[str, bytes]:
        out = {}
        for entry in entries:
            data = self._fresh.pop(entry.blob, None)
            if data is None:
                with open(os.path.join(self.root, entry.path), "rb") as fh:
                    data = fh.read()
            out[entry.blob] = data
        return out


@dataclass
class GitTree:
    """A revision of a Git repository, read without a checkout."""

    repo: str
    rev: str = "HEAD"
    revision: str = field(init=False)
    key: str = field(init=False)  # the root tree id: same tree, same everything

    def __post_init__(self) -> None:
        if not os.path.exists(self.repo):
            raise UsageError(f"{self.repo}: no such directory")
        commit = _git(self.repo, "rev-parse", "--verify", "--quiet", f"{self.rev}^{{commit}}", what=f"revision {self.rev}")
        self.revision = commit.strip()
        self.key = _git(self.repo, "rev-parse", f"{self.revision}^{{tree}}").strip()

    def entries(self) -> list[FileEntry]:
        return parse_ls_tree(_git(self.repo, *ls_tree_args(self.revision), binary=True))

    def read(self, entries: list[FileEntry]) -> dict[str, bytes]:
        return read_blobs(self.repo, [e.blob for e in entries])


def ls_tree_args(treeish: str) -> tuple[str, ...]:
    """git arguments listing a tree's relevant files with sizes (parse with parse_ls_tree)."""
    return ("ls-tree", "-r", "-l", "-z", "--full-tree", treeish, "--", *ROOTS)


def parse_ls_tree(raw: bytes) -> list[FileEntry]:
    """``git ls-tree -r -l -z`` output -> the relevant regular files (no links, no submodules)."""
    out = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, path_b = record.split(b"\t", 1)
        mode, typ, blob, size = meta.split()
        path = path_b.decode("utf-8", "surrogateescape")
        if typ == b"blob" and mode != b"120000" and is_relevant(path):
            out.append(FileEntry(path, blob.decode(), int(size)))
    return out


def read_blobs(repo: str, blobs: list[str]) -> dict[str, bytes]:
    """Read many blobs through one ``git cat-file --batch`` process."""
    if not blobs:
        return {}
    wanted = list(dict.fromkeys(blobs))
    # The request goes in through a file and the answer is read in one call: far faster
    # than communicate()'s polling for megabytes of output.
    with tempfile.TemporaryFile() as request:
        request.write(("\n".join(wanted) + "\n").encode())
        request.seek(0)
        proc = subprocess.Popen(["git", "-C", repo, "cat-file", "--batch"], stdin=request,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean_env())
        data = proc.stdout.read()
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise SourceError(f"git cat-file failed: {err.decode(errors='replace').strip()[:300]}")
    out: dict[str, bytes] = {}
    pos = 0
    for blob in wanted:
        header_end = data.index(b"\n", pos)
        header = data[pos:header_end].split()
        if len(header) < 3 or header[1] == b"missing":
            raise SourceError(f"blob {blob} is missing from {repo}")
        size = int(header[2])
        start = header_end + 1
        out[blob] = data[start : start + size]
        pos = start + size + 1
    return out


# Variables that would point git at another repository (e.g. when run from a git hook).
_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES",
             "GIT_COMMON_DIR", "GIT_NAMESPACE", "GIT_PREFIX")


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _REPO_ENV}


def _git(repo: str, *args: str, what: str | None = None, binary: bool = False):
    proc = subprocess.run(["git", "-C", repo, *args], capture_output=True, check=False, env=clean_env())
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = err[-1] if err else f"exit {proc.returncode}"
        if what:
            raise UsageError(f"{repo}: {what} not found ({detail})" if "not a git repository" not in detail else f"{repo}: not a Git repository")
        raise SourceError(f"git {args[0]} failed in {repo}: {detail[:300]}")
    return proc.stdout if binary else proc.stdout.decode()
