"""One reconcile pass: Git -> validated, authorized desired state -> clusters -> status in Git.

    fetch -> load (changed blobs only) -> authorize (commits since the last reconciled
    revision) -> health -> select -> render -> apply + prune (per provider, isolated)
    -> observe runs -> status -> one status commit, pushed without rewriting anyone's work

Rules that keep a pass safe to repeat and to interrupt:
- the last reconciled revision is read from Git (the ``Source-Revision`` trailer of our last
  status commit), so a restart resumes where it stopped and re-applies nothing that is live;
- a change whose author lacked the permission is not applied: the object stays as it was at
  the last reconciled revision, and its status says who changed what and which permission
  was missing. The first pass of a repository (no status commit yet) trusts what it finds;
- nothing is pruned while any file of the repository fails to load;
- a finished run is never created again (its name is in the build's status);
- our own status commits change nothing that is rendered, so they never cause a new run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..errors import FactoryError
from ..status.composing import Facts, StatusBook, spec_revisions
from ..status.phases import FINISHED
from .reports import APPLIED, Change, PassReport, Problem, stepper

DESIRED_MAX_AGE = 600.0  # seconds a pass may reuse the previous pass's selection and rendering


@dataclass
class PassOptions:
    repo: str  # remote URL or local path of the GitOps repository
    workdir: str  # persists between passes (the bare mirror lives here)
    branch: str | None = None
    push: bool = True
    offline: bool = False  # render and plan only: no cluster is contacted, nothing applied
    # Write status back even when offline (benchmarks of a steady state; not a CLI option).
    write_status_offline: bool = False
    # Developer mode: reconcile this working directory as it is on disk (edited, uncommitted),
    # not a branch. Nothing is authorized (it is the developer's own tree) or written back.
    worktree: str | None = None


WORKTREE = "worktree"  # the revision stamped on what a working directory renders


@dataclass(frozen=True)
class _FullPass:
    """What a full pass decided, for the run-state passes after it (see ``run_once``)."""

    source_rev: str
    desired: Any
    providers: dict[str, str]
    unreachable: dict[str, str]
    unauthorized: dict[str, str]
    report_unauthorized: list[str]
    applied_ok: dict[str, tuple[bool, str]]
    revisions: dict[str, str]
    standing: dict[str, str]
    observed: dict[str, Any]  # provider -> its runs, as observed (the providers reached)
    provider_problems: list[Problem]  # the providers that could not be reached


class _Steady:
    """A pass whose status reached Git (or needed no change), and what it was computed from."""

    def __init__(self, tip: str, desired: Any, clusters: dict, runs: dict, applied_ok: dict, unreachable: dict,
                 unauthorized: dict, outcomes: dict) -> None:
        self.tip, self.desired, self.clusters = tip, desired, clusters
        self.runs, self.applied_ok, self.unreachable, self.unauthorized = runs, applied_ok, unreachable, unauthorized
        self.outcomes = outcomes

    def same_input(self, tip: str | None, desired: Any) -> bool:
        return tip is not None and tip == self.tip and desired is self.desired

    def same_outcome(self, runs: dict, applied_ok: dict, unreachable: dict, unauthorized: dict) -> bool:
        return runs == self.runs and applied_ok == self.applied_ok and unreachable == self.unreachable and \
            unauthorized == self.unauthorized


class Reconciler:
    """State kept between passes: the mirror, the blob cache, cluster connections."""

    def __init__(self, options: PassOptions, on_run_change: Any = None) -> None:
        """``on_run_change(RunEvent)``: when given (``image-factory run``), every provider's
        PipelineRuns and Jobs are watched after each pass, and a run changing state calls it."""
        from ..source.loading import Loader
        from ..source.remote import Mirror

        self.options = options
        self.mirror = Mirror(options.repo, options.workdir)
        self.loader = Loader()
        self._pool = None
        self._keyring = None
        self.last_revision: str | None = None
        from ..desired import CachingRenderer

        self._render_cache = CachingRenderer(None)
        self._ours: set[str] = set()  # status commits this process made (no need to re-verify)
        self._changes: dict[tuple[str, str], Any] = {}
        self._full: _FullPass | None = None  # what the last full pass (with a cluster) decided
        self._memo: tuple | None = None  # (inputs, when, Desired) of the last selection and rendering
        self._steady: _Steady | None = None  # the last pass whose status is in Git
        # Where status is not written (offline, a working tree), the book keeps each build's
        # last status instead, so later passes reuse revisions and selection texts the same way.
        self._book = StatusBook(writes=not (options.worktree or (options.offline and not options.write_status_offline)))
        self.last_report: PassReport | None = None  # of the last pass that ran
        self._owed = False  # the last pass left its status to the next one (superseded)
        self._watches = None
        if on_run_change is not None and not options.offline:
            from ..cluster.watching import Watches

            self._watches = Watches(on_run_change)

    def close(self) -> None:
        if self._watches is not None:
            self._watches.stop()
        if self._pool is not None:
            self._pool.close()

    # --- the pass ----------------------------------------------------------------------

    def run_once(self, mark_applied=None, checkpoint=None, runs_only: bool = False, yield_to=None) -> PassReport:
        """One pass. ``checkpoint()`` is called at the safe points before apply (it raises to
        abandon the pass: nothing was written yet); once applying starts, the pass finishes
        with its status write, so what was applied is recorded.

        ``runs_only``: the pass was asked for only because runs changed state (watch events).
        When nobody else committed since the last full pass, nothing desired can have
        changed: the pass reuses that pass's decisions and renders, sends no request to any
        cluster (the watches hold every run's state) and only brings status up to date.

        ``yield_to()``: True when a status push that lost a race should not be retried,
        because a newer pass is waiting (see ``push_status``); that pass writes the status."""
        started = time.monotonic()
        checkpoint = checkpoint or (lambda: None)
        report = PassReport(offline=self.options.offline)
        step = stepper(report.steps)
        if self.options.worktree:
            snap = self.loader.load_directory(self.options.worktree)
            step("load")
            branch, tip, last, identity, changed_paths = None, None, None, None, None
            report.revision = report.source_revision = source_rev = WORKTREE
        else:
            branch, tip, snap = self._fetch(report, step)
            identity = _write_identity(snap)
            last = self.last_revision or self._recorded_revision(tip, identity)
            source_rev, changed_paths = self._source(tip, last, identity)
            report.source_revision = source_rev
        full = self._full
        if runs_only and full is not None and full.source_rev == source_rev and self._watches is not None \
                and self._watches.primed(set(full.observed)):
            report.scope = "runs"
            runs = self._watches.runs()
            report.providers = dict(full.providers)
            report.problems.extend(full.provider_problems)
            report.unauthorized = list(full.report_unauthorized)
            statuses, outcomes = self._book.compose(snap, Facts(full.desired, runs, full.applied_ok,
                                                                dict(full.unreachable), full.unauthorized,
                                                                full.revisions, full.standing))
            report.add_outcomes(outcomes)
            step("status")
            self._write_status(snap, statuses, branch, identity, source_rev, report, step, yield_to)
            report.duration_s = time.monotonic() - started
            self.last_report = report
            return report

        snap, unauthorized = self._authorize(snap, last, tip, identity)
        report.unauthorized = sorted(f"{path}: {msg}" for path, msg in unauthorized.items())
        step("authorize")
        checkpoint()

        health, unreachable = ({}, {}) if self.options.offline else self._health(snap)
        report.providers = {n: h.state for n, h in sorted(health.items())}
        for name, reason in sorted(unreachable.items()):
            report.error("provider_unhealthy", f"provider {name}: Unhealthy: {reason}", provider=name)
        step("health")
        checkpoint()

        revisions = spec_revisions(snap, changed_paths, source_rev, self._book.unwritten)
        desired, standing = self._desired(snap, health, unreachable, unauthorized, revisions, source_rev)
        steady = self._steady if self._steady is not None and self._steady.same_input(tip, desired) else None
        clusters = steady.clusters if steady is not None else _without_finished_runs(desired, snap)
        step("select+render")
        checkpoint()
        runs, applied_ok = {}, {}
        if not self.options.offline:
            runs, applied_ok, observed = self._sync(snap, clusters, unreachable, report)
            report.applied_at = time.monotonic()
            if mark_applied:
                mark_applied()
            step("apply")
            self._follow(snap, unreachable, observed)
            self._full = _FullPass(source_rev, desired, dict(report.providers), dict(unreachable), unauthorized,
                                   report.unauthorized, applied_ok, revisions, standing, observed,
                                   [p for p in report.problems if p.kind in ("provider_unhealthy", "cluster")])
        if steady is not None and steady.same_outcome(runs, applied_ok, unreachable, unauthorized):
            # Same tree, same desired state, same runs as a pass whose status is in Git: the
            # status would come out the same. Nothing to compute, nothing to write.
            report.add_outcomes(steady.outcomes)
            step("status")
        else:
            facts = Facts(desired, runs, applied_ok, dict(unreachable), unauthorized, revisions, standing,
                          self.options.offline)
            statuses, outcomes = self._book.compose(snap, facts)
            report.add_outcomes(outcomes)
            step("status")
            self._write_status(snap, statuses, branch, identity, source_rev, report, step, yield_to)
            settled = report.status_result in ("unchanged", "pushed", "committed") or \
                report.status_result.startswith("not written")
            self._steady = _Steady(report.status_commit or tip, desired, clusters, runs, applied_ok, dict(unreachable),
                                   dict(unauthorized), outcomes) if settled and tip else None
        self.last_revision = source_rev
        report.duration_s = time.monotonic() - started
        self.last_report = report
        return report

    def nothing_new(self) -> PassReport:
        """The report of a pass that had nothing to do: the last pass's figures, no work."""
        last = self.last_report or PassReport()
        return PassReport(revision=last.revision, source_revision=last.source_revision, providers=dict(last.providers),
                          build_phases=dict(last.build_phases), scope="none", status_result="unchanged")

    def seen_already(self, events: list) -> bool:
        """Are these run changes (watch event details) what the last full pass itself wrote
        or observed? The watch sees the runs a pass creates: those are no news."""
        full = self._full
        if full is None or not events or self._owed:
            return False
        for event in events:
            runs = full.observed.get(event.get("cluster"))
            if runs is None:
                return False
            known = next((state for key, state in runs.items() if (key.kind, key.namespace, key.name) ==
                          (event.get("kind"), event.get("namespace"), event.get("name"))), None)
            if known is None or known != event.get("state"):
                return False
        return True

    # --- steps -------------------------------------------------------------------------

    def _fetch(self, report: PassReport, step: Any) -> tuple[str, str, Any]:
        """Fetch, and load the branch's tip: (branch, tip, snapshot)."""
        began = time.monotonic()
        self.mirror.ensure()
        try:
            self.mirror.fetch()
        except Exception:
            report.git.append(("fetch", time.monotonic() - began, False))
            raise
        step("fetch")
        report.git.append(("fetch", report.steps["fetch"], True))
        branch = self.options.branch or self._default_branch()
        tip = self.mirror.tip(branch)
        if tip is None:
            raise FactoryError(f"branch {branch} does not exist in {self.mirror.safe_url}")
        report.revision = tip
        snap = self.loader.load(self.mirror.tree(tip))
        step("load")
        return branch, tip, snap

    def _desired(self, snap, health, unreachable, unauthorized, revisions, source_rev) -> tuple[Any, dict[str, str]]:
        """Select and render; or, when nothing they depend on changed since the last pass (no
        one else's commit, the same provider health, the same builds running or finished),
        what the last pass computed: a steady pass over 10,000 builds then skips the whole
        selection. Recomputed at least every ``DESIRED_MAX_AGE`` seconds regardless. Also the
        builds with a run (see ``desired.standing_of``)."""
        from ..desired import compute_desired, standing_of

        standing, keep = standing_of(snap, revisions, self._book.unwritten)
        key = None
        if not self.options.worktree:  # a working directory has no revision to compare
            key = (source_rev, tuple(sorted((n, h.state, h.reason, h.tekton_installed, h.buildkit_controller)
                                            for n, h in health.items())),
                   tuple(sorted(unreachable.items())), tuple(sorted(unauthorized)), tuple(sorted(standing.items())),
                   tuple(sorted(keep.items())))
        memo = self._memo
        if key is not None and memo is not None and memo[0] == key and time.monotonic() - memo[1] < DESIRED_MAX_AGE:
            return memo[2], standing
        renderer = self._render_cache.begin(revisions, self._renderer(snap, unreachable))
        desired = compute_desired(snap, health=health, load={name: 0 for name in snap.pools}, revision=source_rev,
                                  renderer=renderer, standing=standing, keep=keep)
        self._memo = (key, time.monotonic(), desired) if key is not None else None
        return desired, standing

    def _write_status(self, snap, statuses, branch, identity, source_rev, report, step, yield_to=None) -> None:
        if self.options.worktree:
            report.status_result = "not written (working tree)"
        elif self.options.offline and not self.options.write_status_offline:
            report.status_result = "not written (offline)"
        elif snap.factory is not None and snap.factory.spec.writeBack.enabled:
            self._write_back(snap, statuses, branch, identity, source_rev, report, yield_to)
            step("write-back")
        # A status left to the next pass: that pass must not be skipped as "nothing new".
        self._owed = report.status_result == "superseded"

    def _default_branch(self) -> str:
        branches = self.mirror.branches()
        for name in ("main", "master"):
            if name in branches:
                return name
        if len(branches) == 1:
            return next(iter(branches))
        raise FactoryError(f"cannot tell which branch to reconcile in {self.mirror.safe_url}: use --branch")

    def _recorded_revision(self, tip: str, identity: Any) -> str | None:
        """The source revision named by our newest status commit on this history."""
        proc = self.mirror.run("log", "-1", "--format=%H%x00%(trailers:key=Source-Revision,valueonly)",
                               f"--author={identity.email}", "--grep=^Source-Revision:", tip, check=False)
        parts = proc.stdout.decode().strip().split("\x00")
        if len(parts) == 2 and parts[1].strip():
            candidate = parts[1].strip().split()[0]
            if self.mirror.run("cat-file", "-e", f"{candidate}^{{commit}}", check=False).returncode == 0:
                return candidate
        return None

    def _source(self, tip: str, last: str | None, identity: Any) -> tuple[str, frozenset[str] | None]:
        """The newest revision not made by us, and the paths others changed since ``last``
        (None when there is no last revision: everything is new)."""
        if last is None:
            return self._newest_foreign(tip, identity), None
        changes = self._foreign(last, tip, identity)
        source = changes.commits[-1].sha if changes.commits else last
        return source, changes.paths

    def _foreign(self, last: str, tip: str, identity: Any) -> Any:
        """Others' commits in last..tip (once per pass; our own recent commits are known)."""
        from ..source.committing import foreign_changes
        from ..status.writeback import only_status_changed

        key = (last, tip)
        if key not in self._changes:
            self._changes = {key: foreign_changes(self.mirror, last, tip, identity, status_only=only_status_changed,
                                                  known=self._ours)}
        return self._changes[key]

    def _newest_foreign(self, tip: str, identity: Any) -> str:
        from ..source.committing import is_status_commit
        from ..status.writeback import only_status_changed

        for record in reversed(self.mirror.commits(None, tip, max_count=50)):
            if not is_status_commit(self.mirror, record, identity, only_status_changed):
                return record.sha
        return tip

    def _authorize(self, snap: Any, last: str | None, tip: str, identity: Any) -> tuple[Any, dict[str, str]]:
        """Keep unauthorized changes out of the desired state (see the module doc)."""
        if last is None:
            return snap, {}
        from ..policy.authorizing import CommitInfo, FileChange, authorize
        from ..source.yamldocs import parse
        from ..validation.objects import check_document

        changes = self._foreign(last, tip, identity)
        if changes.nothing:
            return snap, {}
        commits = [CommitInfo(r.sha, r.parent, r.author_email, r.committer_email, r.summary,
                              tuple(FileChange(f.path, f.status) for f in r.files)) for r in changes.commits]

        def read(rev, path):
            return None if rev is None else self.mirror.read_files(rev, [path]).get(path)

        def factory_at(rev):
            data = read(rev, "factory.yaml")
            docs = parse(data).documents if data else ()
            checked = check_document(docs[0], "FactoryConfig") if docs else None
            return checked.model if checked is not None else None

        verdicts = authorize(commits, factory_at, read)
        bad: dict[str, str] = {}
        for verdict in verdicts:
            for v in verdict.violations:
                bad.setdefault(v.path, f"commit {v.commit[:12]} by {v.actor} {v.message}; not applied")
        if not bad:
            return snap, {}
        previous = self.loader.load(self.mirror.tree(last))
        return _restore(snap, previous, set(bad)), bad

    def _connections(self):
        from ..cluster import ConnectionPool
        from ..clusters import keyring_from_env

        if self._pool is None:
            self._pool = ConnectionPool()
            self._keyring = keyring_from_env()
        return self._pool, self._keyring

    def _renderer(self, snap: Any, unreachable: dict) -> Any:
        """A renderer whose certificate store reads the live Secrets, so BuildKit mTLS
        material stays the same from pass to pass (and is rotated only before expiry)."""
        from ..rendering import InMemoryCertStore, LookupCertStore, Renderer

        if self.options.offline:
            return Renderer(certs=InMemoryCertStore())
        from ..cluster import ClusterError, get_object
        from ..clusters import links

        pool, keyring = self._connections()
        by_name = {link.name: link for link in links(snap, keyring)}

        def lookup(cluster: str, namespace: str, name: str):
            link = by_name.get(cluster)
            if link is None or cluster in unreachable:
                return None
            try:
                secret = get_object(pool.get(link.name, link.spec, link.credentials), "v1", "Secret", name, namespace)
            except (ClusterError, FactoryError):
                return None
            return (secret or {}).get("data")

        return Renderer(certs=LookupCertStore(lookup))

    def _health(self, snap: Any) -> tuple[dict, dict]:
        from ..clusters import check_health, links

        pool, keyring = self._connections()
        health, _details = check_health(pool, links(snap, keyring))
        unreachable = {name: h.reason for name, h in health.items() if h.state == "Unhealthy"}
        return health, unreachable

    def _follow(self, snap: Any, unreachable: dict, observed: dict) -> None:
        """Watch the runs of every provider reached this pass (seeded with what this pass
        observed); an unreachable provider's watch keeps retrying; removed providers' stop."""
        if self._watches is None:
            return
        from ..cluster import ClusterError
        from ..clusters import links

        pool, keyring = self._connections()
        conns, keep = {}, []
        for link in links(snap, keyring):
            if link.name in unreachable:
                keep.append(link.name)
                continue
            try:
                conns[link.name] = pool.get(link.name, link.spec, link.credentials)
            except (ClusterError, FactoryError):
                keep.append(link.name)
        self._watches.ensure(conns, keep=keep, known=observed)

    def _sync(self, snap: Any, clusters: dict, unreachable: dict, report: PassReport) -> tuple[dict, dict, dict]:
        from ..cluster import Target, sync_all
        from ..clusters import links

        pool, keyring = self._connections()
        targets = [Target(link.name, link.spec, tuple(clusters.get(link.name, ())), link.credentials,
                          source_ok=snap.valid)
                   for link in links(snap, keyring) if link.name not in unreachable]
        results = sync_all(pool, targets)
        runs: dict = {}
        applied_ok: dict = {}
        observed: dict = {}  # provider -> {ObjectKey: RunState}
        for provider, sync in sorted(results.items()):
            if sync.error:
                unreachable[provider] = sync.error
                report.error("cluster", f"provider {provider}: {sync.error}", provider=provider)
                continue
            observed[provider] = sync.runs()
            for key, state in observed[provider].items():
                runs[(provider, key.kind, key.namespace, key.name)] = state
            if sync.applied:
                for result in sync.applied.results:
                    if result.action in APPLIED:
                        report.changes.append(Change(result.action, provider, str(result.key), result.build))
                    elif result.action == "unchanged":
                        report.unchanged += 1
                    elif result.action in ("failed", "conflict"):
                        report.error("apply", f"{provider}: {result.key}: {result.message}", build=result.build or None,
                                     provider=provider)
                    if result.build:
                        ok = result.action in ("created", "updated", "unchanged")
                        prior = applied_ok.get(result.build, (True, ""))
                        applied_ok[result.build] = (prior[0] and ok, prior[1] or ("" if ok else result.message))
            if sync.pruned:
                for r in sync.pruned.results:
                    if r.action == "failed":
                        report.error("prune", f"{provider}: prune {r.describe()}", build=r.build or None,
                                     provider=provider)
                    elif r.action != "kept":
                        report.changes.append(Change(r.action, provider, str(r.key), r.build, r.reason))
        return runs, applied_ok, observed

    def _write_back(self, snap, statuses, branch, identity, source_rev, report, yield_to=None) -> None:
        from ..source.committing import push_status
        from ..status.changes import status_changed
        from ..status.writeback import apply_status, read_status

        wanted = {}
        for (path, doc), status in statuses.items():
            wanted.setdefault(path, {})[doc] = status

        def derive(base) -> dict[str, bytes]:
            files = base.read_paths(sorted(wanted))
            edits = {}
            for path, docs in wanted.items():
                data = files.get(path)
                if data is None:
                    continue
                new = data
                for doc, status in sorted(docs.items()):
                    try:
                        if status_changed(read_status(new, doc), status):
                            new = apply_status(new, status, doc)
                    except ValueError:
                        break  # the file changed shape meanwhile: next pass
                if new != data:
                    edits[path] = new
            return edits

        wb = snap.factory.spec.writeBack
        target = wb.branch or branch
        began = time.monotonic()
        result = push_status(self.mirror, target, derive, identity, source_rev, push=self.options.push,
                             signing_key=wb.signingKeyFile, merge_source=target != branch, yield_to=yield_to)
        if result.status in ("pushed", "rejected", "declined", "superseded"):
            report.git.append(("push", time.monotonic() - began, result.status == "pushed"))
        report.status_result = result.status
        report.status_commit = result.commit
        if result.commit:
            self._ours.add(result.commit)
        report.status_files = list(result.files)
        if not result.ok and result.status != "superseded":
            report.error("write_back", f"status write-back to {target}: {result.status}: {result.detail}")


# --- helpers ---------------------------------------------------------------------------------

def _write_identity(snap: Any):
    from ..source.committing import Identity

    if snap.factory is None:
        return Identity("image-factory", "image-factory@localhost")
    return Identity.of(snap.factory.spec.writeBack.author)


def _restore(snap: Any, previous: Any, paths: set[str]) -> Any:
    """``snap`` with every object defined in ``paths`` as it was in ``previous``."""
    from dataclasses import replace

    def pick(now: dict, before: dict) -> dict:
        out = {n: e for n, e in now.items() if e.path not in paths}
        out.update({n: e for n, e in before.items() if e.path in paths})
        return out

    factory = previous.factory if any(p.split("/")[0].startswith("factory.") for p in paths) else snap.factory
    return replace(snap, factory=factory, providers=pick(snap.providers, previous.providers),
                   pools=pick(snap.pools, previous.pools), builds=pick(snap.builds, previous.builds))


def _without_finished_runs(desired: Any, snap: Any) -> dict:
    """Drop the run of a build whose status already records that exact run as finished:
    once retention prunes it, it must not be created (and run) again."""
    skip = set()
    for name, rendered in desired.rendered.builds.items():
        status = snap.builds[name].model.status
        if status and status.run and status.run.name == rendered.run_name and status.phase in FINISHED:
            skip.add((rendered.cluster, rendered.run_kind, rendered.namespace, rendered.run_name))
    out = {}
    for cluster, objs in desired.clusters.items():
        out[cluster] = tuple(o for o in objs if (cluster, o.get("kind"), (o.get("metadata") or {}).get("namespace", ""),
                                                 (o.get("metadata") or {}).get("name")) not in skip)
    return out


def default_workdir(repo: str) -> str:
    """A persistent work directory per repository, outside any checkout."""
    import hashlib
    import os

    base = os.environ.get("IMAGE_FACTORY_WORKDIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "image-factory", "work")
    name = hashlib.sha256(os.path.abspath(repo).encode() if os.path.exists(repo) else repo.encode()).hexdigest()[:16]
    return os.path.join(base, name)


def repo_url(repo: str) -> str:
    import os

    return os.path.abspath(repo) if os.path.exists(repo) else repo


_RECONCILERS: dict[tuple, Reconciler] = {}


def run_pass(triggers: list, context: Any) -> PassReport:
    """The pass ``image-factory run`` calls for every batch of triggers (see reconciler.loop)."""
    opts = context.options
    repo = repo_url(opts.get("repo") or ".")
    workdir = opts.get("workdir") or default_workdir(repo)
    worktree = repo if opts.get("watch_local") else None
    key = (repo, opts.get("branch"), workdir, worktree)
    reconciler = _RECONCILERS.get(key)
    if reconciler is None:
        watch = opts.get("cluster_watch")
        on_run_change = (lambda event: watch.notify("watch", event.as_detail())) if watch is not None else None
        reconciler = _RECONCILERS[key] = Reconciler(PassOptions(repo, workdir, branch=opts.get("branch"),
                                                                offline=bool(opts.get("offline")), worktree=worktree),
                                                    on_run_change)
    context.checkpoint()
    runs_only = bool(triggers) and all(getattr(t, "reason", None) == "watch" and
                                       (getattr(t, "detail", None) or {}).get("phase") != "Deleted" for t in triggers)
    if runs_only and reconciler.seen_already([t.detail for t in triggers]):
        # The watch reports runs as the last pass itself created or saw them.
        return reconciler.nothing_new()
    before = reconciler.last_report.build_phases if reconciler.last_report is not None else None
    report = reconciler.run_once(mark_applied=getattr(context, "mark_applied", None),
                                 checkpoint=getattr(context, "checkpoint", None), runs_only=runs_only,
                                 yield_to=getattr(context, "superseded", None))
    context.log.debug("pass steps: " + ", ".join(f"{k} {v * 1000:.0f}ms" for k, v in report.steps.items()))
    report.log(context.log, before)
    return report


def close_all() -> None:
    """Stop the watches and close the connections of every reconciler ``run_pass`` made."""
    while _RECONCILERS:
        _, reconciler = _RECONCILERS.popitem()
        reconciler.close()
