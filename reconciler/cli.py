"""``image-factory``: parse arguments, call one function, print, exit.

Each subcommand lives in ``reconciler/commands/<name>.py`` and provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Modules import heavy libraries
(kubernetes, jinja2, git) inside ``run`` so that ``--help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from . import commands

EPILOG = """\
exit codes (every command):
  0  success: valid, nothing to change, mergeable
  1  the command ran and found problems (invalid files, changes to apply, violations)
  2  the command could not run (bad arguments, unreadable repository, internal error)

Every command that prints results takes --output json for scripts.
Set IMAGE_FACTORY_DEBUG=1 to see tracebacks of internal errors.
"""


def _command_modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-factory",
        description="GitOps reconciler for container-image builds: YAML in Git -> Tekton/BuildKit on Kubernetes -> status back in Git.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _command_modules():
        module = importlib.import_module(f"{commands.__name__}.{name}")
        cmd = sub.add_parser(
            module.NAME if hasattr(module, "NAME") else name,
            help=module.HELP.splitlines()[0],
            description=module.HELP,
            epilog=getattr(module, "EPILOG", EPILOG),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from .errors import FactoryError

    try:
        return int(args._run(args) or 0)
    except FactoryError as exc:
        print(f"image-factory {args.command}: error: {_redact(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        if os.environ.get("IMAGE_FACTORY_DEBUG") == "1":
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"image-factory {args.command}: internal error: {type(exc).__name__}: {_redact(first)}"
              " (set IMAGE_FACTORY_DEBUG=1 for a traceback)", file=sys.stderr)
        return 2


def _redact(text: str) -> str:
    """Mask credentials opened in this process (only if sealing was ever loaded)."""
    sealing = sys.modules.get("reconciler.sealing")
    return sealing.redact(text) if sealing is not None else text


if __name__ == "__main__":
    sys.exit(main())
