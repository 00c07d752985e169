"""A persistent local mirror of the GitOps remote: fetch, diff, history, push.

The work directory is a **bare** repository with one remote, ``origin``, whose branches
are fetched into ``refs/remotes/origin/*``:

- bare, because nothing here ever checks files out: revisions are read with ``git
  ls-tree``/``cat-file`` (``trees.GitTree``) and status commits are built with a temporary
  index (``committing``), so there is no working tree to leave half-updated after a crash,
  and nothing to keep clean;
- not ``git clone --mirror``, because a mirror fetch (``+refs/*:refs/*``) would overwrite
  refs we keep locally, and a mirror remote pushes with ``--mirror`` semantics, which can
  force-update or delete remote refs. Pushes here are single fast-forward refspecs only.

All git processes of one work directory run under an exclusive ``flock``, so two passes
(or two processes) never interleave; any ``*.lock`` file git left behind when a previous
process was killed is removed once the flock is held (no git can be running then).

Credentials never reach argv (see ``credentials``); every error text is redacted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from typing import Iterator

import git  # GitPython

from ..errors import SourceError, SourceUnavailable
from .credentials import (GitCredentials, RemoteAuthError, RemoteConfigError, RemoteURL, git_env, mask_url,
                          parse_remote, redact)
from .trees import GitTree, read_blobs

EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
REMOTE = "origin"

# Inherited variables that would point git at another repository or object store (set
# when the reconciler itself runs from a git hook, for example).
_GIT_LOCATION_VARS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                      "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_QUARANTINE_PATH", "GIT_NAMESPACE", "GIT_PREFIX",
                      "GIT_COMMON_DIR", "GIT_CONFIG_PARAMETERS", "GIT_PUSH_OPTION_COUNT")

_UNREACHABLE = re.compile(
    r"could not resolve host|connection refused|connection timed out|timed out|operation timed out|"
    r"network is unreachable|no route to host|could not connect|failed to connect|connection reset|"
    r"early eof|the remote end hung up|http 5\d\d|error: 5\d\d|returned error: 5\d\d|"
    r"temporary failure|gnutls|ssl_|unable to access", re.I)
_AUTH = re.compile(
    r"authentication failed|invalid username or password|returned error: 40[13]|http 40[13]|"
    r"permission denied \(publickey|could not read username|could not read password|terminal prompts disabled|"
    r"access denied|forbidden", re.I)
_HOSTKEY = re.compile(r"host key verification failed|remote host identification has changed|"
                      r"no \S+ host key is known", re.I)
_LOST_RACE = re.compile(r"failed to update ref|cannot lock ref|failed to lock|incorrect old value|"
                        r"is at [0-9a-f]+ but expected|reference already exists|stale info|fetch first|non-fast-forward",
                        re.I)


@dataclass(frozen=True)
class ChangedFile:
    """A file a commit (or a range) added (A), modified (M) or deleted (D).

    Same shape as ``reconciler.policy.authorizing.FileChange``: renames arrive as D + A,
    type changes as M."""

    path: str
    status: str


@dataclass(frozen=True)
class CommitRecord:
    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_email: str
    author_time: int
    committer_name: str
    committer_email: str
    committer_time: int
    message: str
    signed: bool
    files: tuple[ChangedFile, ...] = ()

    @property
    def parent(self) -> str | None:
        return self.parents[0] if self.parents else None

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def trailers(self) -> dict[str, list[str]]:
        return parse_trailers(self.message)

    @property
    def author(self) -> str:  # as policy.CommitInfo names it
        return self.author_email

    @property
    def committer(self) -> str:
        return self.committer_email


@dataclass(frozen=True)
class PushOutcome:
    """What the remote said about one pushed ref.

    ``kind``: "pushed"; "rejected" (someone else moved the branch first: fetch, re-derive,
    retry); "declined" (a hook or branch protection refused it: retrying will not help)."""

    kind: str
    commit: str
    branch: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind == "pushed"


@dataclass
class Mirror:
    """The bare work directory that mirrors one remote; persists between passes."""

    url: str = field(repr=False)  # may hold credentials: repr shows safe_url
    workdir: str
    credentials: GitCredentials = field(default_factory=GitCredentials.from_env)
    timeout: float = 300.0
    allow_http_token: bool = False  # tests only: a token over plain http

    def __post_init__(self) -> None:
        self.remote: RemoteURL = parse_remote(self.url)
        self.workdir = os.path.abspath(self.workdir)
        self._secrets = tuple(s for s in (self.remote.password,) if s) + self.credentials.secrets()
        self._thread_lock = threading.RLock()
        self._locked = 0
        self._repo: git.Repo | None = None

    def __repr__(self) -> str:
        return f"Mirror({self.safe_url!r}, {self.workdir!r})"

    # --- setup -------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The git directory (the bare repository)."""
        return self.workdir

    @property
    def safe_url(self) -> str:
        return mask_url(self.remote.url)

    def ensure(self) -> "Mirror":
        """Create the bare repository on first use and point ``origin`` at the URL."""
        with self.locked():
            if not os.path.isfile(os.path.join(self.workdir, "HEAD")):
                if set(os.listdir(self.workdir)) - {"image-factory.lock"}:
                    raise RemoteConfigError(f"{self.workdir}: exists and is not a bare Git repository; "
                                            "give the mirror an empty or new directory")
                os.makedirs(self.workdir, exist_ok=True)
                git.Repo.init(self.workdir, bare=True, mkdir=True, initial_branch="image-factory")
            repo = self.repo
            with repo.config_writer() as cfg:
                section = f'remote "{REMOTE}"'
                if not cfg.has_section(section) or cfg.get_value(section, "url", None) != self.remote.url:
                    cfg.set_value(section, "url", self.remote.url)
                cfg.set_value(section, "fetch", f"+refs/heads/*:refs/remotes/{REMOTE}/*")
                # Never let config turn a push into a mirror or a forced push.
                if cfg.has_option(section, "mirror"):
                    cfg.remove_option(section, "mirror")
                if cfg.has_option(section, "push"):
                    cfg.remove_option(section, "push")
                cfg.set_value("gc", "auto", "256")
        return self

    @property
    def repo(self) -> git.Repo:
        if self._repo is None:
            self._repo = git.Repo(self.workdir)
        return self._repo

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the work directory's flock (re-entrant within this object)."""
        with self._thread_lock:
            if self._locked:
                self._locked += 1
                try:
                    yield
                finally:
                    self._locked -= 1
                return
            os.makedirs(self.workdir, exist_ok=True)
            lock_path = os.path.join(self.workdir, "image-factory.lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._locked = 1
                self._remove_stale_locks()
                try:
                    yield
                finally:
                    self._locked = 0
            finally:
                os.close(fd)

    def _remove_stale_locks(self) -> None:
        # Under our flock no git process of ours runs here, so a *.lock is a crash's leftover.
        for name in ("index.lock", "packed-refs.lock", "config.lock", "shallow.lock", "HEAD.lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.workdir, name))
        refs = os.path.join(self.workdir, "refs")
        for dirpath, _dirs, files in os.walk(refs):
            for name in files:
                if name.endswith(".lock"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(dirpath, name))

    # --- running git -------------------------------------------------------------------

    def env(self, extra: dict | None = None, network: bool = False,
            config: list[tuple[str, str]] | None = None) -> dict[str, str]:
        """The environment of a git process: inherited, minus anything that would point it
        elsewhere, plus credentials (network) and config passed as GIT_CONFIG_* variables
        (never as ``-c`` arguments, which ``ps`` shows)."""
        env = {k: v for k, v in os.environ.items() if k not in _GIT_LOCATION_VARS}
        env.update({"LC_ALL": "C", "LANGUAGE": "C"})
        settings = [("credential.helper", ""), ("safe.directory", self.workdir), ("core.hooksPath", "/dev/null"),
                    ("push.followTags", "false"),
                    # Housekeeping runs inside our (flocked) command, never detached after it.
                    ("gc.autoDetach", "false"), ("maintenance.autoDetach", "false"), *(config or [])]
        if network:
            env.update(git_env(self.remote, self.credentials, os.path.join(self.workdir, "image-factory"),
                               allow_http=self.allow_http_token))
        env.update(extra or {})
        config = settings
        base = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
        for i, (key, value) in enumerate(config):
            env[f"GIT_CONFIG_KEY_{base + i}"] = key
            env[f"GIT_CONFIG_VALUE_{base + i}"] = value
        env["GIT_CONFIG_COUNT"] = str(base + len(config))
        return env

    def run(self, *args: str, input: bytes | None = None, env: dict | None = None, network: bool = False,
            check: bool = True, timeout: float | None = None,
            config: list[tuple[str, str]] | None = None) -> subprocess.CompletedProcess:
        """Run ``git <args>`` in the mirror; raise a redacted, classified error on failure."""
        argv = ["git", "--git-dir", self.workdir, *args]
        limit = timeout or self.timeout
        # Own process group: a timeout kills git's helpers too (git-remote-https, ssh).
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env(env, network, config),
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(input, timeout=limit)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise SourceUnavailable(f"git {args[0]} against {self.safe_url} timed out after {limit:.0f}s") from None
        result = subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise self.error(args[0], stderr, network)
        return result

    def error(self, what: str, stderr: bytes, network: bool) -> SourceError:
        text = redact(stderr.decode("utf-8", "replace"), self._secrets)
        lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("hint:")]
        detail = "; ".join(lines[-3:])[:500] or "no message"
        where = f" {self.safe_url}" if network else ""
        if network and _HOSTKEY.search(text):
            return RemoteAuthError(f"git {what}{where}: the server's host key is not in the known_hosts file "
                                   f"(or has changed): {detail}")
        if network and _AUTH.search(text):
            return RemoteAuthError(f"git {what}{where}: authentication failed: {detail}")
        if network and _UNREACHABLE.search(text):
            return SourceUnavailable(f"git {what}{where}: remote unreachable: {detail}")
        if network and re.search(r"does not appear to be a git repository|repository .* not found|not found", text, re.I):
            return SourceError(f"git {what}{where}: no repository there: {detail}")
        return SourceError(f"git {what}{where} failed: {detail}")

    # --- fetching and reading ------------------------------------------------------------

    def fetch(self) -> dict[str, str]:
        """Fetch every branch of the remote; returns {branch: commit}."""
        self.ensure()
        with self.locked():
            self.run("fetch", "--prune", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head", REMOTE,
                     f"+refs/heads/*:refs/remotes/{REMOTE}/*", network=True)
            return self.branches()

    def branches(self) -> dict[str, str]:
        out = self.run("for-each-ref", "--format=%(objectname) %(refname)", f"refs/remotes/{REMOTE}/").stdout.decode()
        prefix = f"refs/remotes/{REMOTE}/"
        result = {}
        for line in out.splitlines():
            sha, ref = line.split(" ", 1)
            if ref.startswith(prefix) and ref != f"{prefix}HEAD":
                result[ref[len(prefix):]] = sha
        return result

    def tip(self, branch: str) -> str | None:
        """The fetched commit of ``branch`` (None if the remote has no such branch)."""
        proc = self.run("rev-parse", "--verify", "--quiet", f"refs/remotes/{REMOTE}/{branch}^{{commit}}", check=False)
        return proc.stdout.decode().strip() or None

    def resolve_many(self, names: list[str]) -> dict[str, str | None]:
        """Object ids of many revision expressions (``main^{tree}``...) in one process; None
        for what does not resolve."""
        for name in names:
            if "\n" in name or name.startswith("-"):
                raise SourceError(f"not a revision: {name[:60]!r}")
        raw = self.run("cat-file", "--batch-check=%(objectname) %(objecttype)",
                       input=("\n".join(names) + "\n").encode()).stdout.decode()
        out: dict[str, str | None] = {}
        for name, line in zip(names, raw.splitlines()):
            parts = line.split()
            out[name] = parts[0] if len(parts) == 2 and parts[1] != "missing" and line.endswith(("commit", "tree", "blob", "tag")) else None
        return out

    def resolve(self, rev: str) -> str:
        proc = self.run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        sha = proc.stdout.decode().strip()
        if not sha:
            raise SourceError(f"revision {rev} not found in the mirror of {self.safe_url}")
        return sha

    def tree(self, rev: str) -> GitTree:
        """The revision's files, for ``Loader.load`` (no checkout)."""
        return GitTree(self.workdir, rev)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.run("merge-base", "--is-ancestor", ancestor, descendant, check=False).returncode == 0

    def read_files(self, rev: str, paths: list[str]) -> dict[str, bytes | None]:
        """Bytes of ``paths`` at ``rev`` (a commit or tree); None for a path that is absent."""
        listing = ls_tree(self, rev, paths)
        blobs = read_blobs(self.workdir, [blob for _mode, blob in listing.values()])
        return {p: (blobs[listing[p][1]] if p in listing else None) for p in paths}

    # --- what changed ----------------------------------------------------------------------

    def changed_files(self, old: str | None, new: str) -> list[ChangedFile]:
        """Files that differ between two revisions (``git diff --name-status``); ``old``
        None means "from nothing" (every file is added)."""
        raw = self.run("diff", "--name-status", "-z", "--no-renames", "--no-ext-diff", old or EMPTY_TREE, new).stdout
        tokens = raw.split(b"\0")
        out = []
        for i in range(0, len(tokens) - 1, 2):
            status, path = tokens[i].decode(), tokens[i + 1].decode("utf-8", "surrogateescape")
            out.append(ChangedFile(path, _one_status(status)))
        return out

    def commits(self, old: str | None, new: str, max_count: int | None = None) -> list[CommitRecord]:
        """Commits in ``old..new`` (all of ``new``'s history when ``old`` is None), oldest
        first, with author, committer and the files each one touched.

        A merge is charged only with what it changed itself (``--cc``: files that differ
        from every parent, e.g. a conflict resolution or an "evil merge"); the commits it
        brings in are listed on their own."""
        spec = [f"{old}..{new}"] if old else [new]
        limit = ["--max-count", str(max_count)] if max_count else []
        shas = self.run("rev-list", "--reverse", "--topo-order", *limit, *spec).stdout.decode().split()
        if not shas:
            return []
        metas = _read_commits(self, shas)
        files = _commit_files(self, shas)
        return [CommitRecord(**metas[s], files=tuple(files.get(s, ()))) for s in shas]

    # --- pushing -----------------------------------------------------------------------

    def push(self, commit: str, branch: str) -> PushOutcome:
        """Push ``commit`` to ``branch`` as a fast-forward. Never forced: if the branch moved
        meanwhile, the remote rejects it and the outcome says "rejected"."""
        self.ensure()
        if not re.fullmatch(r"[0-9a-f]{40}", commit):
            raise SourceError(f"not a commit id: {commit[:60]}")
        check_branch_name(branch)
        with self.locked():
            proc = self.run("push", "--porcelain", "--no-verify", "--no-follow-tags", REMOTE,
                            f"{commit}:refs/heads/{branch}", network=True, check=False)
        out = proc.stdout.decode("utf-8", "replace")
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].endswith(f"refs/heads/{branch}"):
                flag, summary = parts[0], redact(parts[2], self._secrets)
                if flag in (" ", "*", "="):
                    return PushOutcome("pushed", commit, branch, summary)
                if flag == "!":
                    if "[rejected]" in summary or _LOST_RACE.search(summary):
                        return PushOutcome("rejected", commit, branch, summary)
                    if "[remote failure]" in summary:
                        raise SourceUnavailable(f"git push {self.safe_url}: {summary}")
                    return PushOutcome("declined", commit, branch, summary)
                if flag == "+":  # cannot happen without a '+' refspec; never accept it silently
                    raise SourceError(f"git push {self.safe_url}: unexpected forced update ({summary})")
        if proc.returncode == 0:
            return PushOutcome("pushed", commit, branch, "")
        raise self.error("push", proc.stderr, True)


# --- helpers -------------------------------------------------------------------------------


_BAD_REF = re.compile(r"(^[./-])|(\.\.)|([\x00-\x20~^:?*\[\\\x7f])|(@\{)|(/\.)|(\.lock$)|(/$)|(//)|(\.$)")


def check_branch_name(branch: str) -> None:
    if not branch or _BAD_REF.search(branch) or branch.startswith("refs/"):
        raise RemoteConfigError(f"'{branch[:80]}' is not a valid branch name")


def ls_tree(mirror: Mirror, rev: str, paths: list[str] | None = None) -> dict[str, tuple[str, str]]:
    """path -> (mode, blob) of blobs under ``rev`` (only ``paths`` when given)."""
    if paths is not None and not paths:
        return {}
    args = ["ls-tree", "-r", "-z", "--full-tree", rev]
    # Many paths: filter here rather than on the command line (argv limits).
    raw = mirror.run(*args, *(["--", *paths] if paths is not None and len(paths) <= 500 else [])).stdout
    wanted = set(paths) if paths is not None else None
    out = {}
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, path_b = record.split(b"\t", 1)
        mode, typ, blob = meta.split()
        path = path_b.decode("utf-8", "surrogateescape")
        if typ == b"blob" and (wanted is None or path in wanted):
            out[path] = (mode.decode(), blob.decode())
    return out


def _one_status(status: str) -> str:
    letters = set(status[:1] if status[:1] in "RC" else status)
    if letters == {"A"}:
        return "A"
    if letters == {"D"}:
        return "D"
    return "M"


_PERSON = re.compile(rb"^(?P<name>.*?) ?<(?P<email>[^<>]*)> (?P<time>-?\d+) [+-]\d{4}$")


def _read_commits(mirror: Mirror, shas: list[str]) -> dict[str, dict]:
    """Parse raw commit objects (exact, whatever the messages contain)."""
    raw = read_objects(mirror, shas)
    out = {}
    for sha in shas:
        data = raw[sha]
        head, _, message = data.partition(b"\n\n")
        parents, author, committer, signed = [], (b"", b"", 0), (b"", b"", 0), False
        for line in head.split(b"\n"):
            if line.startswith(b"parent "):
                parents.append(line[7:].decode())
            elif line.startswith(b"author ") or line.startswith(b"committer "):
                key, _, value = line.partition(b" ")
                match = _PERSON.match(value)
                person = (match.group("name"), match.group("email"), int(match.group("time"))) if match else (value, b"", 0)
                if key == b"author":
                    author = person
                else:
                    committer = person
            elif line.startswith(b"gpgsig ") or line.startswith(b"gpgsig-sha256 "):
                signed = True
        out[sha] = {"sha": sha, "parents": tuple(parents),
                    "author_name": author[0].decode("utf-8", "replace"), "author_email": author[1].decode("utf-8", "replace"),
                    "author_time": author[2],
                    "committer_name": committer[0].decode("utf-8", "replace"),
                    "committer_email": committer[1].decode("utf-8", "replace"), "committer_time": committer[2],
                    "message": message.decode("utf-8", "replace"), "signed": signed}
    return out


def read_objects(mirror: Mirror, shas: list[str]) -> dict[str, bytes]:
    """Raw contents of objects by id, through one ``git cat-file --batch``."""
    return read_blobs(mirror.workdir, shas)


def _commit_files(mirror: Mirror, shas: list[str]) -> dict[str, list[ChangedFile]]:
    """Files per commit in one ``git diff-tree --stdin`` process."""
    raw = mirror.run("diff-tree", "--stdin", "-r", "-z", "--no-renames", "--name-status", "--cc", "--root",
                     "--always", input=("\n".join(shas) + "\n").encode()).stdout
    tokens = raw.split(b"\0")
    out: dict[str, list[ChangedFile]] = {}
    wanted = set(shas)
    current = None
    i = 0
    while i < len(tokens):
        token = tokens[i].decode("utf-8", "surrogateescape")
        if not token:
            i += 1
            continue
        if token in wanted:  # a commit id (paths are consumed with their status below)
            current = token
            out.setdefault(current, [])
            i += 1
            continue
        if re.fullmatch(r"[ACDMRTUX]+[0-9]*", token) and i + 1 < len(tokens) and current is not None:
            path = tokens[i + 1].decode("utf-8", "surrogateescape")
            out[current].append(ChangedFile(path, _one_status(token.rstrip("0123456789"))))
            i += 2
            continue
        i += 1
    return out


_TRAILER = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]*):\s*(.*)$")


def parse_trailers(message: str) -> dict[str, list[str]]:
    """Trailers of a commit message: ``Key: value`` lines of its last paragraph."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, list[str]] = {}
    for line in paragraphs[-1].splitlines():
        match = _TRAILER.match(line.strip())
        if not match:
            return {}
        out.setdefault(match.group(1), []).append(match.group(2).strip())
    return out
