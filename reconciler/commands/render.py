"""Print or write the Kubernetes objects the reconciler would apply, grouped by cluster.

Renders every build (or the one named by --build) with its pipeline template, and every
BuildKit pool's infrastructure: team namespaces and RBAC, Tekton Pipelines and PipelineRuns,
Kaniko or BuildKit Jobs, BuildKitPools or standalone buildkitd with mTLS Secrets.

Placement comes from selection, as in a reconcile pass (see `image-factory explain`), with
provider health not checked (Unknown). A build that selection queues or rejects is not
rendered; it is reported on stderr.

Secret values (certificates and private keys, generated on the cluster) are never printed or
written: they are replaced by a placeholder.

exit codes: 0 every build rendered, 1 a file is invalid or a build/pool could not be
rendered (the others are still printed), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ._common import add_repo

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_repo(parser)
    parser.add_argument("--build", action="append", default=None, metavar="NAME",
                        help="render only this build (repeatable); BuildKit pools are rendered with any selection")
    parser.add_argument("--output-dir", default=None, metavar="DIR",
                        help="write one file per object under DIR/<cluster>/ instead of printing")
    parser.add_argument("--output", "-o", choices=("yaml", "json"), default="yaml", help="format (default: yaml)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..desired import compute_desired
    from ..rendering import mask_secret_data
    from ._common import load_snapshot

    snap = load_snapshot(args)
    for problem in snap.problems:
        print(str(problem), file=sys.stderr)
    if args.build:
        missing = [b for b in args.build if b not in snap.builds]
        if missing and not snap.invalid:
            raise UsageError(f"no build named {', '.join(missing)}")
    revision = snap.revision or "working-tree"
    desired = compute_desired(snap, builds=args.build, revision=revision)
    result = desired.rendered
    errors = dict(result.errors)
    for name, decision in desired.decisions.items():
        if not decision.admitted:
            errors[f"build/{name}"] = f"{decision.state}: {decision.reason}"
    clusters = {c: [mask_secret_data(o) for o in objs] for c, objs in result.clusters.items()}
    for what, reason in sorted(errors.items()):
        print(f"{what}: {reason}", file=sys.stderr)
    if args.output_dir:
        _write(args.output_dir, clusters, args.output)
        count = sum(len(v) for v in clusters.values())
        print(f"wrote {count} objects for {len(clusters)} cluster{'s' * (len(clusters) != 1)} under {args.output_dir}",
              file=sys.stderr)
    elif args.output == "json":
        json.dump({"revision": revision, "clusters": clusters,
                   "builds": {n: {"cluster": b.cluster, "pool": b.pool, "namespace": b.namespace, "backend": b.backend,
                                  "template": b.template, "kind": b.run_kind, "name": b.run_name}
                              for n, b in sorted(result.builds.items())},
                   "errors": dict(sorted(errors.items()))}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_yaml(clusters)
    return 1 if (errors or not snap.valid) else 0


def _dump_yaml(obj: dict) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data):  # never &anchors/*aliases in output
            return True

    return yaml.dump(obj, Dumper=Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def _print_yaml(clusters: dict[str, list[dict]]) -> None:
    out = sys.stdout
    first = True
    for cluster, objects in clusters.items():
        for obj in objects:
            if not first:
                out.write("---\n")
            first = False
            out.write(f"# cluster: {cluster}\n")
            out.write(_dump_yaml(obj))


def _write(root: str, clusters: dict[str, list[dict]], fmt: str) -> None:
    for cluster, objects in clusters.items():
        folder = os.path.join(root, cluster)
        os.makedirs(folder, exist_ok=True)
        for i, obj in enumerate(objects):
            meta = obj.get("metadata") or {}
            parts = [f"{i:03d}", obj.get("kind", "object").lower(), meta.get("namespace") or "", meta.get("name", "")]
            name = "-".join(p for p in parts if p)
            path = os.path.join(folder, f"{name}.{fmt}")
            with open(path, "w", encoding="utf-8") as fh:
                if fmt == "json":
                    json.dump(obj, fh, indent=2)
                    fh.write("\n")
                else:
                    fh.write(_dump_yaml(obj))
