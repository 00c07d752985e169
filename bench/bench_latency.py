"""Benchmark 7: trigger-to-PipelineRun latency of `image-factory run` with a webhook.

    python3 bench/bench_latency.py [--pushes 50] [--quick]

A real API server (``tests/controlplane.py``, as bench_apply, shared with it under ``python -m
bench``: see bench/controlplane.py; Tekton CRDs installed), a
GitOps repository as a real Git repository with a bare remote on disk whose one provider is
that API server (``tests/test_diff_live.local_repo``), and ``python -m reconciler run --repo
<remote> --listen 127.0.0.1:0 --poll-interval off --log-format json`` as a process of its own.

Each sample, as a developer and their Git host would: pull (the reconciler's status commits),
add ``builds/web/lat-NNN.yaml`` (a new build, so a new PipelineRun must be created), commit
as a web developer, push to the remote, then POST the signed GitHub push webhook. The figure
is the time from sending the webhook until the API server has the build's PipelineRun,
seen by a watch on the namespace that was opened before the first sample (events are
delivered from the resourceVersion of a LIST, so none is missed, however late it is read).
Each sample waits for its pass to end (its status commit pushed) before the next push.

Also reported: the run process's VmRSS and VmHWM after the pushes, and its exit code on
SIGTERM (must be 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.runproc import RunProcess, git, git_env, push  # noqa: E402

ADMIN = git_env("Alice", "alice@acme.example")  # platform-admin in examples-repo/factory.yaml
DEVELOPER = git_env("Wendy", "wendy@acme.example")  # developer of team web
PASS_TIMEOUT = 120.0


class RunWatch:
    """A watch on the PipelineRuns of one namespace; records when each build's first one is ADDED."""

    def __init__(self, cp, namespace: str) -> None:
        self.cp = cp
        self.namespace = namespace
        self.path = f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns"
        self.seen: dict[str, float] = {}  # build -> perf_counter() when its run was first seen
        self.errors: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._resource_version = self._list()
        self._thread = threading.Thread(target=self._run, name="pipelinerun-watch", daemon=True)

    def _connect(self, timeout: float | None) -> http.client.HTTPSConnection:
        url = urllib.parse.urlsplit(self.cp.server)
        return http.client.HTTPSConnection(url.hostname, url.port, context=self.cp.ssl_context(), timeout=timeout)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cp.token}", "Accept": "application/json"}

    def _list(self) -> str:
        conn = self._connect(30)
        try:
            conn.request("GET", self.path, headers=self._headers())
            resp = conn.getresponse()
            body = json.loads(resp.read())
            if resp.status != 200:
                raise RuntimeError(f"LIST {self.path}: {resp.status} {body}")
        finally:
            conn.close()
        now = time.perf_counter()
        for item in body.get("items", []):
            self._record(item, now)
        return body["metadata"]["resourceVersion"]

    def list_builds(self) -> list[str]:
        """The builds whose PipelineRuns a LIST finds now (for error messages)."""
        conn = self._connect(30)
        try:
            conn.request("GET", self.path, headers=self._headers())
            body = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        return sorted(((i.get("metadata") or {}).get("labels") or {}).get("imagefactory.dev/build", "?")
                      for i in body.get("items", []))

    def _record(self, obj: dict, now: float) -> None:
        build = ((obj.get("metadata") or {}).get("labels") or {}).get("imagefactory.dev/build")
        if build:
            with self._cond:
                self.seen.setdefault(build, now)
                self._cond.notify_all()

    def start(self) -> RunWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            query = urllib.parse.urlencode({"watch": "1", "resourceVersion": self._resource_version,
                                            "allowWatchBookmarks": "true", "timeoutSeconds": "600"})
            try:
                self._conn = self._connect(None)
                self._conn.request("GET", f"{self.path}?{query}", headers=self._headers())
                resp = self._conn.getresponse()
                if resp.status != 200:
                    raise RuntimeError(f"watch {self.path}: {resp.status} {resp.read()[:500]!r}")
                while not self._stop.is_set():
                    line = resp.readline()
                    if not line:
                        break  # the server ended the watch (timeoutSeconds): watch again from where we were
                    now = time.perf_counter()
                    event = json.loads(line)
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        # 410 Gone: our resourceVersion is too old; LIST again (records what exists)
                        self._resource_version = self._list()
                        break
                    rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if rv:
                        self._resource_version = rv
                    if event.get("type") == "ADDED":
                        self._record(obj, now)
            except Exception as exc:  # noqa: BLE001 - reported with the figures; the wait for the run times out
                if self._stop.is_set():
                    return
                self.errors.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.2)
            finally:
                if self._conn is not None:
                    self._conn.close()

    def wait(self, build: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        with self._cond:
            while build not in self.seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no PipelineRun of build {build} in {self.namespace} within {timeout:g} s"
                                       + (f" (watch errors: {self.errors[-3:]})" if self.errors else ""))
                self._cond.wait(min(left, 0.5))
            return self.seen[build]

    def stop(self) -> None:
        self._stop.set()
        conn = self._conn
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(2)  # wakes the blocked readline
            except OSError:
                pass
        self._thread.join(5)


def new_build(src: Path, template: str, name: str) -> Path:
    """``builds/web/NAME.yaml``: the frontend build under another name and image."""
    path = src / "builds" / "web" / f"{name}.yaml"
    path.write_text(template.replace("name: frontend", f"name: {name}")
                    .replace("registry.acme.example/web/frontend:", f"registry.acme.example/web/{name}:"))
    return path


def wait_status_commit(remote: Path, sha: str, timeout: float) -> None:
    """Wait until the remote's main has the reconciler's status commit for ``sha``."""
    deadline = time.monotonic() + timeout
    while True:
        trailers = git(remote, "log", "--format=%(trailers:key=Source-Revision,valueonly)", f"{sha}..main")
        if sha in trailers.split():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no status commit for {sha[:12]} on the remote within {timeout:g} s")
        time.sleep(0.02)


def _utc() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, ``inclusive`` quantiles)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(cp, tmp: Path, pushes: int) -> dict:
    from tests.test_diff_live import local_repo

    prefix = f"lat{uuid.uuid4().hex[:5]}-"
    src = local_repo(tmp, cp.kubeconfig, prefix, builds=("web/frontend",))
    template = (src / "builds/web/frontend.yaml").read_text()
    # Nothing plays Tekton here, so every run stays Pending and holds a slot of the pool: room
    # for all of them, or the 11th build would be (rightly) Queued and get no PipelineRun.
    pool = src / "pools/local-general.yaml"
    pool.write_text(pool.read_text().replace("maxConcurrentBuilds: 10", f"maxConcurrentBuilds: {pushes + 10}"))
    git(src, "init", "-q", "-b", "main", env=ADMIN)
    git(src, "add", "-A", env=ADMIN)
    git(src, "commit", "-q", "-m", "initial", env=ADMIN)
    remote = tmp / "remote.git"
    git(tmp, "clone", "-q", "--bare", str(src), str(remote), env=ADMIN)
    git(src, "remote", "add", "origin", str(remote), env=ADMIN)

    namespace = f"{prefix}web"
    watch = RunWatch(cp, namespace).start()
    run = RunProcess(["--repo", str(remote), "--workdir", str(tmp / "work"), "--listen", "127.0.0.1:0",
                      "--poll-interval", "off"])
    try:
        run.wait_listening()
        outcome, first_s = run.wait_pass_end(1, PASS_TIMEOUT)
        if outcome != "ok":
            raise RuntimeError(f"the first pass of image-factory run was not ok ({outcome}):\n{run.tail()}")
        watch.wait("frontend", 30)
        run.wait_idle()
        latencies, pass_s, trace, passes = [], [], [], 1
        for i in range(pushes):
            name = f"lat-{i:03d}"
            git(src, "pull", "-q", "--rebase", "origin", "main", env=DEVELOPER)
            new_build(src, template, name)
            git(src, "add", "-A", env=DEVELOPER)
            git(src, "commit", "-q", "-m", f"web: add {name}", env=DEVELOPER)
            sha = push(src, DEVELOPER)
            number = run.passes_ended() + 1
            sent = time.perf_counter()
            trace.append(f"{_utc()} sample {i}: webhook for {sha[:12]} sent")
            status, answer = run.webhook(sha)
            trace.append(f"{_utc()} sample {i}: webhook answered {status} {answer.get('result')}")
            if status != 202 or answer.get("result") != "queued":
                raise RuntimeError(f"webhook {i}: {status} {answer}")
            try:
                seen = watch.wait(name, PASS_TIMEOUT)
            except TimeoutError as exc:
                found = watch.list_builds()
                raise TimeoutError(f"sample {i}: {exc} (a LIST now finds: {', '.join(found)}); "
                                   f"log of image-factory run:\n{run.tail(40)}\nbenchmark:\n"
                                   + "\n".join(trace[-12:])) from None
            latencies.append(seen - sent)
            # The sample is over when its status commit is on the remote and no pass runs
            # (or follows) any more; only then does the developer push again.
            _, seconds = run.wait_pass_end(number, PASS_TIMEOUT)
            if seconds is not None:
                pass_s.append(seconds)
            wait_status_commit(remote, sha, PASS_TIMEOUT)
            passes = run.wait_idle()
        memory = run.memory_mb()
        outcomes = {}
        for n in range(1, passes + 1):
            outcome, _ = run.wait_pass_end(n, 10)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        triggers = run.triggers()
        code = run.stop()
        if code != 0:
            raise RuntimeError(f"image-factory run exited {code} on SIGTERM, not 0:\n{run.tail()}")
    finally:
        run.kill()
        watch.stop()
    ms = [s * 1000 for s in latencies]
    return {
        "samples": len(ms),
        "latency_median_ms": round(statistics.median(ms), 1),
        "latency_p95_ms": round(percentile(ms, 0.95), 1),
        "latency_min_ms": round(min(ms), 1),
        "latency_max_ms": round(max(ms), 1),
        "pass_median_ms": round(statistics.median(pass_s) * 1000, 1) if pass_s else None,
        "first_pass_s": first_s,
        "passes": passes,
        "pass_outcomes": ",".join(f"{k}={v}" for k, v in sorted(outcomes.items())),
        "pass_triggers": " ".join(f"{k}={v}" for k, v in sorted(triggers.items())),
        "run_vmrss_mb": memory.get("VmRSS"),
        "run_vmhwm_mb": memory.get("VmHWM"),
        "run_exit_code": code,
        "watch_errors": len(watch.errors),
    }


def run(quick: bool = False, pushes: int | None = None) -> dict:
    from bench.controlplane import control_plane

    pushes = pushes or (10 if quick else 50)
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        with control_plane(tmp) as cp:
            result = measure(cp, tmp, pushes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"pushes": pushes, **result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print(json.dumps(run(quick=args.quick, pushes=args.pushes if not args.quick else None), indent=2))
