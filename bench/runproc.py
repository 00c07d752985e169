"""Driving `image-factory run` as a real process from a benchmark: start, webhooks, passes, memory.

Used by bench_latency and bench_run_memory (not a benchmark itself: no ``bench_`` prefix).
Everything is on loopback; the run process logs JSON lines on stderr, which a thread reads.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_PASS_END = re.compile(r"^pass (\d+) (ok|failed|error|abandoned|could not run)\b(?: in ([0-9.]+)s)?")


def git_env(name: str, email: str) -> dict[str, str]:
    """The environment of a user's git commands (author and committer ``name <email>``)."""
    return {**os.environ, "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


def push(src: Path, env: dict[str, str], attempts: int = 5) -> str:
    """Push ``src``'s main to origin, rebasing on commits that landed meanwhile (the
    reconciler's status commits); returns the pushed commit."""
    for attempt in range(attempts):
        try:
            git(src, "push", "-q", "origin", "main", env=env)
            return git(src, "rev-parse", "HEAD")
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            git(src, "pull", "-q", "--rebase", "origin", "main", env=env)
    raise AssertionError("unreachable")


def proc_status_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (the peak) of a running process, in MB."""
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


class RunProcess:
    """``python -m reconciler run ...`` with a random webhook secret and JSON logs.

    ``wait_pass_end(n)``: wait for the log line ``pass N <outcome> in S s``; ``webhook(sha)``
    posts a signed GitHub push event; ``stop()`` sends SIGTERM and returns the exit code.
    """

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self.secret = secrets.token_hex(16)
        full_env = {**os.environ, **(env or {}), "IMAGE_FACTORY_WEBHOOK_SECRET": self.secret,
                    "PYTHONUNBUFFERED": "1"}
        full_env.pop("IMAGE_FACTORY_WEBHOOK_SECRET_FILE", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "reconciler", "run", *args, "--log-format", "json"],
                                     cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, errors="replace")
        self.records: list[dict] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None

    # -- the log ---------------------------------------------------------------------------

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"msg": line.rstrip("\n"), "level": "raw"}
            if not isinstance(record, dict):
                record = {"msg": str(record), "level": "raw"}
            with self._cond:
                self.records.append(record)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_record(self, predicate, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for record in self.records[seen:]:
                    if predicate(record):
                        return record
                seen = len(self.records)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise RuntimeError(f"image-factory run exited ({self.proc.returncode}) before {what}:\n{self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no {what} within {timeout:g} s; log:\n{self.tail()}")
                self._cond.wait(min(left, 0.5))

    def tail(self, lines: int = 25) -> str:
        def line(r: dict) -> str:
            extra = " ".join(f"{k}={r[k]}" for k in ("trigger", "revision") if r.get(k))
            return (f"{r.get('ts', '')} {r.get('msg')}" + (f" [{extra}]" if extra else "")
                    + (f"\n{r['exc']}" if r.get("exc") else ""))

        return "\n".join(line(r) for r in self.records[-lines:])

    def wait_listening(self, timeout: float = 60) -> int:
        record = self.wait_record(lambda r: str(r.get("msg", "")).startswith("listening on http://"), timeout,
                                  "'listening on' log line")
        self.port = int(record.get("port") or re.search(r":(\d+)", record["msg"].rsplit("/", 1)[0]).group(1))
        return self.port

    def wait_pass_end(self, number: int, timeout: float) -> tuple[str, float | None]:
        """Wait for pass ``number`` to end; (outcome, seconds)."""
        def ended(record: dict) -> bool:
            m = _PASS_END.match(str(record.get("msg", "")))
            return bool(m) and int(m.group(1)) == number

        record = self.wait_record(ended, timeout, f"end of pass {number}")
        m = _PASS_END.match(record["msg"])
        assert m is not None
        return m.group(2), float(m.group(3)) if m.group(3) else None

    def passes_ended(self) -> int:
        with self._cond:
            numbers = [int(m.group(1)) for r in self.records if (m := _PASS_END.match(str(r.get("msg", ""))))]
        return max(numbers, default=0)

    def triggers(self) -> dict[str, int]:
        """Passes started, by their triggers (``webhook``, ``watch,webhook``, ...)."""
        counts: dict[str, int] = {}
        with self._cond:
            for r in self.records:
                if re.match(r"^pass \d+ started", str(r.get("msg", ""))):
                    key = str(r.get("trigger") or "?")
                    counts[key] = counts.get(key, 0) + 1
        return counts

    # -- HTTP ------------------------------------------------------------------------------

    def webhook(self, after: str, before: str = "0" * 40, repository: str = "bench/gitops") -> tuple[int, dict]:
        """POST a signed GitHub push of ``main`` at ``after`` to /hooks/git."""
        assert self.port is not None, "wait_listening() first"
        body = json.dumps({"ref": "refs/heads/main", "before": before, "after": after,
                           "repository": {"full_name": repository, "default_branch": "main",
                                          "clone_url": f"https://git.example.com/{repository}.git"},
                           "pusher": {"name": "bench"}}).encode()
        signature = hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", "/hooks/git", body=body, headers={
                "X-GitHub-Event": "push", "X-GitHub-Delivery": secrets.token_hex(8),
                "X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def readyz(self) -> tuple[int, dict]:
        assert self.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/readyz")
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read() or b"{}")
        finally:
            conn.close()

    def wait_idle(self, quiet: float = 0.25, timeout: float = 120) -> int:
        """Wait until no pass runs and none has started for ``quiet`` seconds (follow-up
        passes, such as those a cluster watch asks for after our own applies, included);
        returns the number of passes started so far."""
        deadline = time.monotonic() + timeout
        last: tuple[bool, int] | None = None
        since = time.monotonic()
        while time.monotonic() < deadline:
            _, details = self.readyz()
            state = (bool(details.get("pass_running")), int(details.get("passes") or 0))
            if state != last:
                last, since = state, time.monotonic()
            elif not state[0] and time.monotonic() - since >= quiet:
                return state[1]
            time.sleep(0.05)
        raise TimeoutError(f"image-factory run did not become idle within {timeout:g} s; log:\n{self.tail()}")

    # -- memory and the end ------------------------------------------------------------------

    def memory_mb(self) -> dict[str, float]:
        return proc_status_mb(self.proc.pid)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, wait; the exit code (KILL after ``timeout``, and then a negative code)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode
        finally:
            self._reader.join(5)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
