"""Write or check the JSON Schema files in schemas/, one per kind.

Editors use them for completion and checking (every example file starts with a
`# yaml-language-server: $schema=...` line), and CI can validate with any JSON Schema tool.
They are generated from the models; --check fails when they are stale.

exit codes: 0 written / up to date, 1 stale (--check), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os

from ._common import add_output, print_json

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="(re)write the schema files")
    mode.add_argument("--check", action="store_true", help="fail when a schema file is missing or stale")
    parser.add_argument("--dir", default=None, help="schema folder (default: schemas/ of this project)")
    add_output(parser)


def schema_filename(kind: str) -> str:
    return f"{kind.lower()}.schema.json"


def default_dir() -> str:
    return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "schemas")


def generate() -> dict[str, str]:
    from ..models import API_VERSION, KINDS

    out = {}
    for kind, model in KINDS.items():
        schema = model.model_json_schema(mode="validation")
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://imagefactory.dev/schemas/{API_VERSION.split('/')[1]}/{schema_filename(kind)}",
            **schema,
        }
        out[schema_filename(kind)] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return out


def run(args: argparse.Namespace) -> int:
    folder = args.dir or default_dir()
    wanted = generate()
    stale = []
    for name, text in wanted.items():
        path = os.path.join(folder, name)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current != text:
            stale.append(name)
            if args.write:
                os.makedirs(folder, exist_ok=True)
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
    if args.output == "json":
        print_json({"dir": folder, "files": sorted(wanted), "stale" if args.check else "written": stale})
    elif args.check:
        for name in stale:
            print(f"{os.path.join(folder, name)}: stale; run `image-factory schemas --write` and commit")
        print("schemas are up to date" if not stale else f"{len(stale)} schema file(s) stale")
    else:
        print(f"wrote {len(stale)} of {len(wanted)} schema files in {folder}" if stale else "schemas already up to date")
    return 1 if (args.check and stale) else 0
