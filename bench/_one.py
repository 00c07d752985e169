"""`python -m bench._one NAME [--quick] --out FILE`: one benchmark in a process of its own.

The harness (`python -m bench`) starts this once per benchmark, so that each benchmark's
peak RSS is its own and a crash (or the kernel's OOM killer) takes down only that one.
Writes the benchmark's figures, plus ``peak_rss_mb``, as JSON to ``FILE``; on an exception
it writes ``{"error": ...}`` instead and exits 1.

``peak_rss_mb`` is the high-water mark of this process's resident set (``VmHWM`` of
``/proc/self/status``) when the benchmark returns: the imports, the inputs it generated and
everything it held at its peak. Processes a benchmark starts (an API server, ``image-factory
run``) are not counted; benchmarks report those themselves. ``VmHWM`` is read rather than
``ru_maxrss`` because after a vfork+exec (how Python starts subprocesses) the kernel's
``ru_maxrss`` of the new process can include the high-water mark of the parent it was
forked from.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The ``Vm*`` lines of /proc/PID/status, in kB (empty when the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.startswith("Vm") and value.strip().endswith("kB"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def peak_rss_mb() -> float:
    hwm = proc_status().get("VmHWM")
    if hwm is None:  # not Linux: ru_maxrss (kB on Linux, bytes on macOS)
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    return round(hwm / 1024, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._one")
    parser.add_argument("name")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True, help="file to write the JSON figures to")
    args = parser.parse_args(argv)
    code = 0
    try:
        module = importlib.import_module(f"bench.bench_{args.name}")
        figures = dict(module.run(quick=args.quick))
    except BaseException as exc:  # noqa: BLE001 - reported to the harness, whatever it was
        traceback.print_exc()
        figures = {"error": f"{type(exc).__name__}: {exc}".strip()}
        code = 1
    # The child's own peak replaces any figure the benchmark measured in-process.
    figures.pop("peak_rss_mb", None)
    figures["peak_rss_mb"] = peak_rss_mb()
    Path(args.out).write_text(json.dumps(figures))
    return code


if __name__ == "__main__":
    sys.exit(main())
