"""`python -m bench [--quick] [--only NAME ...] [--json FILE]`: the product's benchmarks, one table.

Each benchmark is a module `bench/bench_<name>.py` with a `run(quick: bool) -> dict` that
returns its figures (seconds as `*_s`, milliseconds as `*_ms`, megabytes as `*_mb`, ratios as
`ratio_*`). Figures are medians of several runs; comparisons with other tools are measured in
the same run.

Every benchmark runs in a child process of its own (`python -m bench._one NAME`), so that
`peak_rss_mb` (the child's VmHWM) is that benchmark's own peak, and a benchmark that fails
or crashes is reported with its error while the others still run (exit code 1). `wall_s` and
`cpu_s` (user + system time of the child and the processes it waited for) are added too.
Processes a benchmark starts itself (an API server, `image-factory run`) are not in its
`peak_rss_mb`; the benchmarks that start them report their memory as separate figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from bench import controlplane  # noqa: E402


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "date": time.strftime("%Y-%m-%d"), "load_average": [round(x, 2) for x in os.getloadavg()], **code()}


def code() -> dict:
    """The commit measured, and the files of the product that differ from it (the figures
    are of the working tree, so a benchmark run while reconciler/ is being edited says so)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
        return proc.stdout.rstrip("\n") if proc.returncode == 0 else ""  # keep the status's leading blank

    changed = git("status", "--porcelain", "--", "reconciler", "pipeline-templates").splitlines()
    return {"commit": git("rev-parse", "--short=12", "HEAD").strip() or None,
            "uncommitted": sorted(line[3:] for line in changed)}


def run_child(name: str, quick: bool, timeout: float) -> dict:
    """Run one benchmark in its own process; its figures, or ``{"error": ...}``."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        out = Path(tmp) / "figures.json"
        command = [sys.executable, "-m", "bench._one", name, "--out", str(out)] + (["--quick"] if quick else [])
        # A session of its own: on a timeout the whole group (the benchmark and whatever it
        # started) is stopped, and a Ctrl-C at the terminal reaches it only through us.
        proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        tail: deque[str] = deque(maxlen=30)
        reader = threading.Thread(target=_relay, args=(proc, name, tail), daemon=True)
        reader.start()
        try:
            code = proc.wait(timeout)
            timed_out = False
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            _stop_group(proc)
            code, timed_out = proc.returncode, isinstance(exc, subprocess.TimeoutExpired)
            if not timed_out:
                raise
        # Whatever the benchmark started and left behind (it crashed before stopping its
        # `image-factory run`, say) is in its process group: stop it too.
        _stop_group(proc)
        reader.join(5)
        figures: dict = {}
        if out.exists():
            try:
                figures = json.loads(out.read_text())
            except ValueError:
                figures = {}
        if timed_out:
            figures = {"error": f"timed out after {timeout:g} s", **{k: v for k, v in figures.items() if k != "error"}}
        elif code != 0 and "error" not in figures:
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            last = next((line for line in reversed(tail) if line.strip()), "")
            figures = {"error": f"benchmark process {how}" + (f": {last.strip()}" if last else ""), **figures}
        return figures


class _Progress:
    """``running NAME ... 12.3 s`` on one stderr line, unless the benchmark printed meanwhile."""

    def __init__(self) -> None:
        self.open = False
        self.lock = threading.Lock()

    def begin(self, text: str) -> None:
        with self.lock:
            print(text, end="", file=sys.stderr, flush=True)
            self.open = True

    def line(self, text: str) -> None:
        with self.lock:
            if self.open:
                print(file=sys.stderr)
                self.open = False
            print(text, file=sys.stderr, flush=True)

    def end(self, text: str, prefix: str) -> None:
        with self.lock:
            print((" " if self.open else prefix + " ") + text, file=sys.stderr, flush=True)
            self.open = False


PROGRESS = _Progress()


def _relay(proc: subprocess.Popen, name: str, tail: deque) -> None:
    """The child's output, prefixed with its name, onto our stderr (progress and tracebacks)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        tail.append(line.rstrip("\n"))
        PROGRESS.line(f"  [{name}] {line.rstrip()}")


def _stop_group(proc: subprocess.Popen) -> None:
    """TERM, then KILL, to the child's own process group (started with start_new_session):
    the child and whatever it started; returns at once when the group is already empty."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()  # reap the child itself, so only the others keep the group alive
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller inputs, fewer runs (under a minute)")
    parser.add_argument("--only", nargs="*", default=None, help=f"benchmarks to run (of: {', '.join(available())})")
    parser.add_argument("--json", default="bench/results/latest.json", help="where to write the figures")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one benchmark may take (default: 3600)")
    args = parser.parse_args(argv)
    names = args.only or available()
    unknown = [n for n in names if n not in available()]
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (of: {', '.join(available())})")
    results = {"machine": machine(), "quick": args.quick, "benchmarks": {}}
    failed = 0
    started = time.perf_counter()
    with shared_control_plane(names) as names:
        for name in names:
            failed += _run_one(name, args, results)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    print(table(results))
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=2)
    info = results["machine"]
    if info.get("uncommitted"):
        print(f"\nmeasured the working tree: {len(info['uncommitted'])} files of the product differ from "
              f"commit {info.get('commit')}: {', '.join(info['uncommitted'][:6])}"
              + (" ..." if len(info["uncommitted"]) > 6 else ""), file=sys.stderr)
    print(f"\n{len(names)} benchmarks in {results['wall_s']} s"
          + (f", {failed} failed" if failed else "") + f"; figures written to {args.json}", file=sys.stderr)
    return 1 if failed else 0


def _run_one(name: str, args: argparse.Namespace, results: dict) -> int:
    """Run one benchmark, record its figures; 1 when it failed."""
    PROGRESS.begin(f"running {name} ...")
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = run_child(name, args.quick, args.timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    # CPU of the benchmark process and of the processes it waited for (`run`, git, kubectl;
    # not a daemonized API server): next to wall_s, it shows how busy the machine was.
    figures["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    results["benchmarks"][name] = figures
    if "error" in figures:
        PROGRESS.end(f"FAILED after {figures['wall_s']} s: {_first_line(figures['error'])}", f"running {name} ...")
        return 1
    PROGRESS.end(f"{figures['wall_s']} s, peak RSS {figures.get('peak_rss_mb', '?')} MB", f"running {name} ...")
    return 0


@contextlib.contextmanager
def shared_control_plane(names: list[str]) -> Iterator[list[str]]:
    """When several selected benchmarks need an API server, start one for all of them
    (bench/controlplane.py); yields the names in the order to run them."""
    users = [n for n in controlplane.USERS if n in names]
    if len(users) < 2:
        yield names
        return
    order = iter(users)
    names = [next(order) if n in users else n for n in names]  # the users in USERS' order, in their slots
    with tempfile.TemporaryDirectory(prefix="bench-control-plane-") as tmp:
        PROGRESS.begin(f"starting an API server for {', '.join(users)} ...")
        start = time.perf_counter()
        try:
            cp = controlplane.start(Path(tmp) / "control-plane")
        except Exception as exc:  # noqa: BLE001 - each benchmark then tries its own, and reports why it failed
            PROGRESS.end(f"failed: {_first_line(exc)}", "starting an API server ...")
            yield names
            return
        PROGRESS.end(f"{time.perf_counter() - start:.1f} s", "starting an API server ...")
        os.environ[controlplane.ENV] = str(cp.workdir)
        try:
            yield names
        finally:
            os.environ.pop(controlplane.ENV, None)
            cp.stop()


def _first_line(text: object, limit: int = 160) -> str:
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


# Shown first in each benchmark's rows, in this order; the rest keep the benchmark's order.
_FIRST = ("error", "wall_s", "cpu_s", "peak_rss_mb")


def table(results: dict) -> str:
    """One row per figure; the benchmark's name on its first row only, a rule between benchmarks."""
    header = ("benchmark", "figure", "value")
    groups = []
    for name, figures in results["benchmarks"].items():
        keys = [k for k in _FIRST if k in figures] + [k for k in figures if k not in _FIRST]
        groups.append([(name if i == 0 else "", key, _first_line(figures[key])) for i, key in enumerate(keys)])
    rows = [header] + [row for group in groups for row in group]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]

    def fmt(row: tuple[str, str, str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    for i, group in enumerate(groups):
        if i:
            lines.append("")
        lines.extend(fmt(row) for row in group)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
