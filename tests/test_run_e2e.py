"""`image-factory run` end to end, as a subprocess with the real pass, a real bare remote and
the real API server: webhook to PipelineRun, Tekton status to Git through the watch (no
polling), bad signatures, bursts, two replicas with a Lease, API server restarts, SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import pytest

from .helpers import git
from .test_loop_run import SECRET, github_push, processes, start  # noqa: F401 - processes is a fixture
from .test_reconcile import WENDY, _set_run_status, _status, setup  # noqa: F401 - setup is a fixture

pytestmark = pytest.mark.controlplane

RUN = ("--listen", "127.0.0.1:0", "--poll-interval", "off", "--branch", "main")
ENV = {"IMAGE_FACTORY_WEBHOOK_SECRET": SECRET}


def _real(processes, tmp_path: Path, remote: Path, work: Path, *extra: str, env: dict | None = None):
    return start(processes, tmp_path, "--repo", str(remote), "--workdir", str(work), *RUN, *extra,
                 env={**ENV, **(env or {})}, real=True)


def _wait(condition, timeout: float, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return None


def _ours_on_top(remote: Path) -> bool:
    return git(remote, "log", "-1", "--format=%an", "main").strip() == "image-factory"


def _passes(p) -> int:
    return sum(" started" in line and "pass " in line for line in p.lines)


def _idle(p, quiet: float = 0.5, timeout: float = 30) -> None:
    """Wait until no pass runs and none started for ``quiet`` seconds."""
    def settled() -> bool:
        started = _passes(p)
        ended = sum(line.split(" loop: ")[-1].startswith("pass ") and " in " in line and " started" not in line
                    for line in p.lines)
        return started == ended
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = len(p.lines)
        if settled():
            time.sleep(quiet)
            if settled() and len(p.lines) == count:
                return
        time.sleep(0.05)
    raise AssertionError(f"the process never went idle:\n{p.log}")


def _drain(q) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out


def _push_new_build(src: Path, name: str) -> str:
    """A user adds a build (a copy of frontend under a new name) and pushes it; returns the commit."""
    git(src, "pull", "-q", "--rebase", "origin", "main", env=WENDY)
    text = (src / "builds/web/frontend.yaml").read_text().split("\nstatus:")[0]
    (src / f"builds/web/{name}.yaml").write_text(text.replace("name: frontend", f"name: {name}") + "\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", f"add {name}", env=WENDY)
    for _ in range(10):  # the reconciler may push a status commit in between: rebase and retry
        if git(src, "push", "-q", "origin", "HEAD:main", check=False, env=WENDY) == "" and \
                git(remote_of(src), "rev-parse", "main").strip() == git(src, "rev-parse", "HEAD").strip():
            break
        git(src, "pull", "-q", "--rebase", "origin", "main", env=WENDY)
    return git(src, "rev-parse", "HEAD").strip()


def remote_of(src: Path) -> Path:
    return Path(git(src, "remote", "get-url", "origin").strip())


def _runs_of(cp, namespace: str, name: str) -> list[str]:
    code, body = cp.request("GET", f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns")
    assert code == 200, body
    return [r["metadata"]["name"] for r in body.get("items", [])
            if (r["metadata"].get("labels") or {}).get("imagefactory.dev/build", "").endswith(name)]


def test_webhook_to_pipelinerun_and_tekton_status_to_git_each_within_2s(setup, processes, tmp_path):
    cp, src, remote, work, prefix = setup
    p = _real(processes, tmp_path, remote, work)
    port = p.port()
    assert _wait(lambda: _ours_on_top(remote), 60), p.log
    p.wait_log(r"pass 1 ok", 30)

    # A bad signature: 401, and no pass.
    before = _passes(p)
    status, _ = github_push(port, secret="not-the-secret")
    assert status == 401
    time.sleep(0.5)
    assert _passes(p) == before

    # A push and its signed webhook: the new build's PipelineRun exists within 2 s.
    commit = _push_new_build(src, "storefront")
    sent = time.monotonic()
    status, _ = github_push(port, after=commit)
    assert status in (200, 202)
    assert _wait(lambda: _runs_of(cp, f"{prefix}web", "storefront"), 2.0), p.log
    latency = time.monotonic() - sent
    assert latency < 2.0

    # Tekton finishes a run: the status commit follows within 2 s, without any poll (the
    # watch sees the run change; --poll-interval is off).
    assert _wait(lambda: _status(remote, "builds/web/storefront.yaml").get("run"), 10), p.log
    run = _status(remote, "builds/web/frontend.yaml")["run"]
    _idle(p)
    mark = len(p.lines)
    _set_run_status(cp, run["namespace"], run["name"], "True", "Succeeded")
    sent = time.monotonic()
    assert _wait(lambda: _status(remote, "builds/web/frontend.yaml").get("phase") == "Succeeded", 2.0, 0.05), p.log
    assert time.monotonic() - sent < 2.0
    # (the commit may land a moment before the pass logs its end)
    assert _wait(lambda: any("run states only" in line and "status pushed" in line for line in p.lines[mark:]), 5), p.log
    assert any(" started " in line and "trigger=watch " in line for line in p.lines[mark:]), p.log
    # ... and logs the build's new phase, with the build and its provider as fields.
    assert any(re.search(r"build frontend: \w+ -> Succeeded on local/.* build=frontend provider=local", line)
               for line in p.lines[mark:]), p.log

    # The API server restarts: the watch reconnects (or re-lists after 410) and status still follows.
    cp.restart_apiserver()
    other = _status(remote, "builds/web/checkout-api.yaml")["run"]
    time.sleep(1.5)  # let the watch reconnect after its backoff
    _set_run_status(cp, other["namespace"], other["name"], "False", "PipelineRunTimeout")
    assert _wait(lambda: _status(remote, "builds/web/checkout-api.yaml").get("phase") == "Failed", 20, 0.1), p.log

    # What the passes did is in /metrics.
    import urllib.request

    metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for pattern in (r'git_operations_total\{operation="fetch",outcome="ok"\} [1-9]',
                    r'git_operations_total\{operation="push",outcome="ok"\} [1-9]',
                    r'provider_health\{provider="local",state="(Healthy|Degraded)"\} 1\.0',
                    r'builds\{phase="Succeeded"\} [1-9]', r'builds\{phase="Failed"\} [1-9]',
                    r'trigger_to_apply_seconds_count\{reason="webhook"\} [1-9]',
                    r'trigger_to_apply_seconds_count\{reason="watch"\} [1-9]',
                    r'objects_applied_total [1-9]'):
        assert re.search(r"^image_factory_" + pattern, metrics, re.M), pattern
    count = float(re.search(r'^image_factory_trigger_to_apply_seconds_count\{reason="webhook"\} (\S+)', metrics, re.M)[1])
    total = float(re.search(r'^image_factory_trigger_to_apply_seconds_sum\{reason="webhook"\} (\S+)', metrics, re.M)[1])
    assert 0 < total / count < 2.0
    assert p.stop(signal.SIGTERM) == 0
    assert "Traceback" not in p.log


def test_a_burst_of_20_pushes_coalesces_into_a_few_passes(setup, processes, tmp_path):
    cp, src, remote, work, prefix = setup
    p = _real(processes, tmp_path, remote, work)
    port = p.port()
    p.wait_log(r"pass 1 ok", 60)
    assert _wait(lambda: _ours_on_top(remote), 30)
    _idle(p)
    before, mark = _passes(p), len(p.lines)
    names = [f"burst-{i:02d}" for i in range(20)]
    for name in names:
        commit = _push_new_build(src, name)
        status, _ = github_push(port, after=commit)
        assert status in (200, 202)
    # Every build gets its status, in far fewer passes than pushes. The pool runs 10 builds at
    # once: the 3 started before keep their slots (nothing is pruned for newcomers), 7 of the
    # new ones get a run and 13 wait.
    assert _wait(lambda: all(_status(remote, f"builds/web/{n}.yaml").get("phase") for n in names), 60, 0.2), p.log
    passes = _passes(p) - before
    assert 1 <= passes <= 10, f"{passes} passes for 20 pushes"
    phases = [_status(remote, f"builds/web/{n}.yaml")["phase"] for n in names]
    assert phases.count("Queued") == 13 and phases.count("Pending") == 7, phases
    assert sum(bool(_runs_of(cp, f"{prefix}web", n)) for n in names) == 7
    for old in ("frontend", "checkout-api"):
        assert _status(remote, f"builds/web/{old}.yaml")["phase"] == "Pending" and _runs_of(cp, f"{prefix}web", old)
    assert all(" 0 pruned" in line for line in p.lines[mark:] if " pruned" in line), p.log
    assert p.stop(signal.SIGTERM) == 0 and "Traceback" not in p.log


def test_two_replicas_one_leads_and_the_other_takes_over_within_the_lease(setup, processes, tmp_path):
    cp, src, remote, work, prefix = setup
    ns = f"{prefix}lease"
    cp.kubectl("create", "namespace", ns)
    try:
        lease = ("--leader-elect", "--kubeconfig", str(cp.kubeconfig), "--lease-namespace", ns,
                 "--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "0.5s")
        a = _real(processes, tmp_path, remote, tmp_path / "work-a", *lease, "--identity", "replica-a")
        b = _real(processes, tmp_path, remote, tmp_path / "work-b", *lease, "--identity", "replica-b")
        assert _wait(lambda: _ours_on_top(remote), 60), a.log + b.log
        leader, standby = (a, b) if any("leading" in line for line in a.lines) else (b, a)
        assert any("leading" in line for line in leader.lines)
        time.sleep(2)
        assert _passes(standby) == 0 and _passes(leader) >= 1  # only the leader reconciles

        leader.proc.kill()  # dies without releasing the lease
        leader.proc.wait()
        died = time.monotonic()
        standby.wait_log(r"leading", 15)
        assert time.monotonic() - died < 4 + 3, "the standby took longer than the lease to take over"

        # The new leader reconciles for real: a pushed build gets its run.
        commit = _push_new_build(src, "after-takeover")
        status, _ = github_push(standby.port(), after=commit)
        assert status in (200, 202)
        assert _wait(lambda: _runs_of(cp, f"{prefix}web", "after-takeover"), 20), standby.log
        assert standby.stop(signal.SIGTERM) == 0 and "Traceback" not in standby.log
    finally:
        cp.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_sigterm_mid_pass_exits_0_and_leaves_git_untouched(setup, processes, tmp_path):
    """A pass stuck on a provider that accepts connections and never answers: SIGTERM stops
    the process within the shutdown timeout, exit 0, and nothing half-done reaches Git."""
    cp, src, remote, work, prefix = setup
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(16)  # never accepted: TLS never starts
    try:
        kubeconfig = tmp_path / "hole-kubeconfig"
        kubeconfig.write_text(Path(cp.kubeconfig).read_text().replace(cp.server, f"https://127.0.0.1:{hole.getsockname()[1]}"))
        (src / "providers/stuck.yaml").write_text((src / "providers/local.yaml").read_text()
                                                  .replace("name: local", "name: stuck")
                                                  .replace(str(cp.kubeconfig), str(kubeconfig)))
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "a provider that hangs", env=WENDY)
        git(src, "push", "-q", "origin", "main")
        head = git(remote, "rev-parse", "main").strip()
        p = _real(processes, tmp_path, remote, work, "--shutdown-timeout", "2s")
        p.wait_log(r"pass 1 started", 30)
        time.sleep(1.0)  # inside the health check of "stuck"
        stopped = time.monotonic()
        assert p.stop(signal.SIGTERM) == 0
        assert time.monotonic() - stopped < 6
        assert "received SIGTERM" in p.log and "Traceback" not in p.log
        assert "left unfinished" in p.log or "abandoned at a safe point" in p.log
        assert git(remote, "rev-parse", "main").strip() == head  # no partial status commit
    finally:
        hole.close()



def test_a_pass_for_run_changes_only_asks_no_cluster(setup):
    """In process: after a full pass, a pass asked for by watch events alone takes the runs'
    states from the watches, sends no request, and commits the new status; a user's commit
    makes the next one a full pass again."""
    import queue

    from reconciler.loop.passing import PassOptions, Reconciler

    cp, src, remote, work, prefix = setup
    events: queue.Queue = queue.Queue()
    reconciler = Reconciler(PassOptions(str(remote), str(work), branch="main"), events.put)
    try:
        first = reconciler.run_once()
        assert first.scope == "full" and len(first.applied) > 0
        assert _wait(lambda: reconciler._watches.primed(["local"]), 10)
        run = _status(remote, "builds/web/frontend.yaml")["run"]
        _set_run_status(cp, run["namespace"], run["name"], "True", "Succeeded")
        # (the controller manager moves the kaniko build's Job too: other events may come first)
        news = []
        assert _wait(lambda: any((e.name, e.phase) == (run["name"], "Succeeded") for e in news.extend(_drain(events))
                                 or news), 5)
        assert not reconciler.seen_already([e.as_detail() for e in news if e.name == run["name"]])

        sent = {name: dict(conn.stats) for name, conn in reconciler._pool._conns.items()}
        second = reconciler.run_once(runs_only=True)
        assert second.scope == "runs" and second.status_result == "pushed", second.as_dict()
        assert {name: dict(conn.stats) for name, conn in reconciler._pool._conns.items()} == sent
        assert _status(remote, "builds/web/frontend.yaml")["phase"] == "Succeeded"

        _push_new_build(src, "late")
        third = reconciler.run_once(runs_only=True)
        assert third.scope == "full" and any("late" in a for a in third.applied)
        # The running watch sees the run that pass created: that is no news.
        late = []
        assert _wait(lambda: any(e.name.startswith("late-") for e in late.extend(_drain(events)) or late), 5)
        assert reconciler.seen_already([e.as_detail() for e in late if e.name.startswith("late-")])
        assert reconciler.nothing_new().build_phases == third.build_phases
    finally:
        reconciler.close()


def test_a_status_push_that_loses_a_race_is_left_to_the_waiting_pass(setup, tmp_path):
    """In process: a pass's status push loses a race to a user while another pass waits. It
    is not retried (no backoff holding up the waiting pass), the waiting pass is not skipped
    as "nothing new" (the watch's news is of runs the raced pass made), and it writes the status."""
    import queue

    from reconciler.loop.passing import PassOptions, Reconciler

    from .test_writeback_push import racing_users

    cp, src, remote, work, prefix = setup
    events: queue.Queue = queue.Queue()
    reconciler = Reconciler(PassOptions(str(remote), str(work), branch="main"), events.put)
    try:
        reconciler.run_once()
        _push_new_build(src, "raced")
        _, log = racing_users(remote, src, "builds/web/frontend.yaml", tmp_path, 1)
        raced = reconciler.run_once(yield_to=lambda: True)
        assert raced.status_result == "superseded" and raced.exit_code == 0, raced.as_dict()
        assert any("raced-" in a for a in raced.applied)
        [user] = log.read_text().split()
        assert git(remote, "rev-parse", "main").strip() == user and not _status(remote, "builds/web/raced.yaml")

        news = []
        assert _wait(lambda: any(e.name.startswith("raced-") for e in news.extend(_drain(events)) or news), 5)
        assert not reconciler.seen_already([e.as_detail() for e in news if e.name.startswith("raced-")])
        after = reconciler.run_once(runs_only=True)
        assert after.status_result == "pushed", after.as_dict()
        assert _status(remote, "builds/web/raced.yaml")["run"]["name"].startswith("raced-")
    finally:
        reconciler.close()


def test_developer_mode_applies_an_uncommitted_edit_and_writes_nothing_back(setup, processes, tmp_path):
    """--watch-local: the working directory as it is on disk is reconciled on every edit."""
    cp, src, remote, work, prefix = setup
    p = start(processes, tmp_path, "--repo", str(src), "--workdir", str(work), "--watch-local", *RUN, real=True)
    p.wait_log(r"pass 1 ok", 60)
    # Each created run is logged, with its provider as a field, and each build's new phase.
    assert sum("created PipelineRun" in line and "provider=local" in line for line in p.lines) == 3, p.log
    assert any("build frontend: Pending on local/" in line and "build=frontend" in line for line in p.lines), \
        p.log
    head = git(src, "rev-parse", "HEAD").strip()
    _idle(p)
    mark = len(p.lines)
    path = src / "builds/web/frontend.yaml"
    text = path.read_text()
    assert "/frontend:2.14.0" in text
    path.write_text(text.replace("/frontend:2.14.0", "/frontend:2.15.0-dev"))
    assert _wait(lambda: any("created PipelineRun" in line and "frontend" in line for line in p.lines[mark:]),
                 10), p.log
    assert any("trigger=file" in line for line in p.lines[mark:]), p.log
    assert git(src, "rev-parse", "HEAD").strip() == head
    assert git(src, "status", "--porcelain").strip() == "M builds/web/frontend.yaml"
    assert p.stop(signal.SIGTERM) == 0 and "Traceback" not in p.log
