"""Helpers every command shares: output format flags, JSON printing, repository loading."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def add_output(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("--output", "-o", choices=choices, default="text", help="output format (default: text)")


def add_repo(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    if positional:
        parser.add_argument("path", nargs="?", default=".", help="repository directory (default: .)")
    else:
        parser.add_argument("--repo", dest="path", default=".", help="repository directory (default: .)")
    parser.add_argument("--rev", default=None,
                        help="read this Git revision of the repository instead of the files on disk (no checkout)")


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


def load_snapshot(args: argparse.Namespace, loader: Any = None):
    """The Snapshot the command's --repo/PATH and --rev name."""
    from ..errors import UsageError
    from ..source.loading import Loader

    loader = loader or Loader()
    path = args.path
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file or directory")
    if args.rev:
        return loader.load_revision(path, args.rev)
    if not os.path.isdir(path):
        raise UsageError(f"{path}: not a directory (give the repository's top folder)")
    return loader.load_directory(path)


def use_color(stream=sys.stdout) -> bool:
    return stream.isatty() and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"
