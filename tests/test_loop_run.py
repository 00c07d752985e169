"""``image-factory run`` as a process: webhooks in, passes out, SIGTERM mid-pass, exit codes.

The real pass (``reconciler.loop.passing``) is the lead's; these tests load a stand-in from a
file into ``sys.modules`` before calling the real CLI (see RUNNER), so the product code has
no test hook. Each stand-in pass appends ``start <n> <reasons>`` / ``end <n>`` lines to
``$FAKE_PASS_EVENTS``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SECRET = "run-test-webhook-secret-42"

RUNNER = textwrap.dedent("""
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location("reconciler.loop.passing", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["reconciler.loop.passing"] = module
    from reconciler.cli import main
    sys.exit(main(sys.argv[2:]))
""")

FAKE_PASS = textwrap.dedent("""
    import os, time, types
    EVENTS = os.environ["FAKE_PASS_EVENTS"]
    SECONDS = float(os.environ.get("FAKE_PASS_SECONDS", "0.05"))
    SAFE_POINTS = os.environ.get("FAKE_PASS_SAFE_POINTS", "1") == "1"

    def note(line):
        with open(EVENTS, "a") as f:
            f.write(line + "\\n")

    def run_pass(triggers, context):
        note(f"start {context.number} {','.join(t.reason for t in triggers)} {len(triggers)}")
        end = time.monotonic() + SECONDS
        while time.monotonic() < end:
            if SAFE_POINTS:
                context.checkpoint()
                context.wait(0.02)
            else:
                time.sleep(0.02)
        context.mark_applied()
        note(f"end {context.number}")
        return types.SimpleNamespace(exit_code=0, revision="c" * 40, applied=1, pruned=0, errors=[])

    def close_all():
        note("closed")
""")


class RunProcess:
    def __init__(self, tmp_path: Path, *args: str, env: dict[str, str] | None = None, real: bool = False) -> None:
        """``image-factory run *args`` with the stand-in pass, or with the real one (``real``)."""
        self.events = tmp_path / f"events-{time.monotonic_ns()}.txt"
        self.events.touch()
        fake_path = tmp_path / "fake_pass.py"
        fake_path.write_text(FAKE_PASS)
        full_env = {**os.environ, "FAKE_PASS_EVENTS": str(self.events), "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1",
                    "PYTHONPATH": str(ROOT), **(env or {})}
        full_env.pop("IMAGE_FACTORY_WEBHOOK_SECRET", None) if "IMAGE_FACTORY_WEBHOOK_SECRET" not in (env or {}) else None
        command = ["-m", "reconciler"] if real else ["-c", RUNNER, str(fake_path)]
        self.proc = subprocess.Popen([sys.executable, *command, "run", *args],
                                     cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def wait_log(self, pattern: str, timeout: float = 15) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = re.search(pattern, line)
                if m:
                    return m
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.02)
        raise AssertionError(f"no log line matching {pattern!r}; log:\n{self.log}")

    def port(self) -> int:
        return int(self.wait_log(r"listening on http://127\.0\.0\.1:(\d+)").group(1))

    def events_(self) -> list[str]:
        return self.events.read_text().splitlines()

    def wait_events(self, predicate, timeout: float = 10) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events = self.events_()
            if predicate(events):
                return events
            time.sleep(0.02)
        raise AssertionError(f"events never matched: {self.events_()}\nlog:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            # Still running: have faulthandler (PYTHONFAULTHANDLER) print every thread's stack.
            self.proc.send_signal(signal.SIGABRT)
            self.proc.wait(10)
            self._reader.join(5)
            raise AssertionError(f"still running {timeout:g}s after signal {sig}; log and stacks:\n{self.log}")
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return rc


@pytest.fixture
def processes():
    started: list[RunProcess] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait()


def start(processes, tmp_path, *args, **kw) -> RunProcess:
    p = RunProcess(tmp_path, *args, **kw)
    processes.append(p)
    return p


def github_push(port: int, secret: str = SECRET, after: str = "b" * 40) -> tuple[int, dict]:
    body = json.dumps({"ref": "refs/heads/main", "before": "a" * 40, "after": after,
                       "repository": {"full_name": "acme/gitops", "clone_url": "https://github.com/acme/gitops.git",
                                      "default_branch": "main"},
                       "pusher": {"name": "alice"}}).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/hooks/git", body=body, headers={
            "X-GitHub-Event": "push", "X-GitHub-Delivery": "1", "X-Hub-Signature-256": f"sha256={sig}",
            "Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


BASE = ("--listen", "127.0.0.1:0", "--poll-interval", "off", "--branch", "main")


def test_sigterm_mid_pass_abandons_it_at_a_safe_point_and_exits_0(processes, tmp_path):
    p = start(processes, tmp_path, *BASE, env={"FAKE_PASS_SECONDS": "60"})
    p.wait_events(lambda ev: any(e.startswith("start 1 start") for e in ev))
    t0 = time.monotonic()
    assert p.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 5
    assert "end 1" not in p.events_() and p.events_()[-1] == "closed"  # watches and connections closed
    assert "pass 1 abandoned at a safe point: received SIGTERM" in p.log
    assert p.lines[-1].endswith("stopped")
    assert "Traceback" not in p.log


def test_sigterm_mid_pass_without_safe_points_lets_it_finish(processes, tmp_path):
    p = start(processes, tmp_path, *BASE, env={"FAKE_PASS_SECONDS": "1.5", "FAKE_PASS_SAFE_POINTS": "0"})
    p.wait_events(lambda ev: any(e.startswith("start 1") for e in ev))
    assert p.stop(signal.SIGTERM) == 0
    assert p.events_()[-2:] == ["end 1", "closed"]
    assert "pass 1 ok" in p.log and "left unfinished" not in p.log


def test_sigint_also_stops_cleanly(processes, tmp_path):
    p = start(processes, tmp_path, *BASE)
    p.wait_events(lambda ev: "end 1" in ev)
    assert p.stop(signal.SIGINT) == 0
    assert "received SIGINT" in p.log


def test_signed_webhook_runs_a_pass_quickly_and_a_bad_one_runs_none(processes, tmp_path):
    p = start(processes, tmp_path, *BASE, env={"IMAGE_FACTORY_WEBHOOK_SECRET": SECRET})
    port = p.port()
    p.wait_events(lambda ev: "end 1" in ev)

    status, data = github_push(port, secret="wrong")
    assert status == 401
    time.sleep(0.5)
    assert not any(e.startswith("start 2") for e in p.events_())

    t0 = time.monotonic()
    status, data = github_push(port)
    assert (status, data["result"]) == (202, "queued")
    p.wait_events(lambda ev: "end 2" in ev, timeout=2)
    assert time.monotonic() - t0 < 2
    assert any(e.startswith("start 2 webhook") for e in p.events_())
    assert p.stop() == 0
    assert SECRET not in p.log


def test_burst_of_20_webhooks_coalesces_into_a_few_passes(processes, tmp_path):
    p = start(processes, tmp_path, *BASE, env={"IMAGE_FACTORY_WEBHOOK_SECRET": SECRET, "FAKE_PASS_SECONDS": "0.5"})
    port = p.port()
    p.wait_events(lambda ev: "end 1" in ev)
    for i in range(20):
        assert github_push(port, after=f"{i + 1:040x}")[1]["result"] == "queued"
    events = p.wait_events(lambda ev: sum(e.startswith("start") for e in ev) >= 2
                           and ev[-1].startswith("end"), timeout=10)
    time.sleep(1.2)  # let any further pass start
    events = p.events_()
    webhook_passes = [e for e in events if e.startswith("start") and "webhook" in e]
    assert 1 <= len(webhook_passes) <= 3, events
    assert sum(int(e.split()[-1]) for e in webhook_passes) == 20, events  # every trigger handled, once
    assert p.stop() == 0


def test_json_logs_are_one_object_per_line(processes, tmp_path):
    p = start(processes, tmp_path, *BASE, "--log-format", "json")
    p.wait_events(lambda ev: "end 1" in ev)
    assert p.stop() == 0
    records = [json.loads(line) for line in p.lines]
    assert any(r["msg"].startswith("pass 1 ok") and r.get("revision") == "c" * 40 for r in records)
    assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)


def test_bad_arguments_exit_2(processes, tmp_path):
    p = start(processes, tmp_path, "--listen", "nonsense")
    assert p.proc.wait(30) == 2
    p = start(processes, tmp_path, *BASE, "--watch-local", "--repo", str(tmp_path / "missing"))
    assert p.proc.wait(30) == 2
    p._reader.join(5)
    assert "--watch-local needs --repo to be a local directory" in p.log
    p = start(processes, tmp_path, *BASE, "--leader-elect", env={"KUBECONFIG": str(tmp_path / "none")})
    assert p.proc.wait(30) == 2
    p._reader.join(5)
    assert "--leader-elect: no usable cluster configuration" in p.log
    p = start(processes, tmp_path, *BASE, "--leader-elect", "--lease-duration", "5s", "--renew-deadline", "5s")
    assert p.proc.wait(30) == 2
    p._reader.join(5)
    assert "lease duration must be greater than the renew deadline" in p.log
