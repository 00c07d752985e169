"""Run one reconcile pass: Git -> clusters -> status back in Git.

  fetch -> load -> validate -> authorize (commits since the last reconciled revision)
  -> check provider health -> select -> render -> apply + prune -> observe -> status commit

The repository is a remote URL (https with IMAGE_FACTORY_GIT_TOKEN[_FILE], ssh with
IMAGE_FACTORY_GIT_SSH_KEY_FILE and IMAGE_FACTORY_GIT_KNOWN_HOSTS) or a local path; it is
mirrored into --workdir, which persists between passes. Sealed provider credentials are
opened with the keys named by IMAGE_FACTORY_SEALING_KEYS or IMAGE_FACTORY_SEALING_KEY_DIR.

Status is committed as one commit per pass ("status: N builds updated", trailer
Source-Revision) and pushed as a fast-forward; a rejected push is retried on the new tip,
never forced. With --no-push the commit stays in the work directory. With --offline no
cluster is contacted: selection, rendering and status are computed and nothing is applied.

  image-factory reconcile --once --repo https://git.example.com/platform/builds.git

exit codes: 0 clean, 1 some builds or providers failed to reconcile (or a change was not
authorized), 2 the pass could not run (remote unreachable, bad arguments).
"""

from __future__ import annotations

import argparse

from ._common import print_json

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", required=True,
                        help="run a single pass and exit (for a continuous loop, use `image-factory run`)")
    parser.add_argument("--repo", default=".", metavar="URL|PATH", help="the GitOps repository (default: .)")
    parser.add_argument("--branch", default=None, help="branch to reconcile (default: main, master, or the only one)")
    parser.add_argument("--workdir", default=None, metavar="DIR",
                        help="persistent work directory (default: $IMAGE_FACTORY_WORKDIR or ~/.cache/image-factory/work/...)")
    parser.add_argument("--no-push", action="store_true", help="commit status in the work directory but do not push")
    parser.add_argument("--offline", action="store_true",
                        help="contact no cluster: select, render and compute status only; apply nothing")
    parser.add_argument("--output", "-o", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    from ..loop.passing import PassOptions, Reconciler, default_workdir, repo_url

    repo = repo_url(args.repo)
    reconciler = Reconciler(PassOptions(repo, args.workdir or default_workdir(repo), branch=args.branch,
                                        push=not args.no_push, offline=args.offline))
    try:
        report = reconciler.run_once()
    finally:
        reconciler.close()
    if args.output == "json":
        print_json(report.as_dict())
    else:
        print(render_text(report))
    return report.exit_code


def render_text(report) -> str:
    lines = [f"reconciled {report.source_revision[:12] if report.source_revision else '?'}"
             f" (branch tip {report.revision[:12] if report.revision else '?'}) in {report.duration_s:.2f}s"]
    if report.offline:
        lines.append("OFFLINE: no cluster was contacted and nothing was applied; phases below are what the "
                     "repository would get, not what ran")
    for name, state in report.providers.items():
        lines.append(f"  provider {name}: {state}")
    lines.append(f"  applied {len(report.applied)}, unchanged {report.unchanged}, pruned {len(report.pruned)}, "
                 f"queued {len(report.queued)}, rejected {len(report.rejected)}")
    if report.offline:
        for name, where in sorted(report.placements.items()):
            lines.append(f"    would run {name} on {where}")
    for item in report.applied[:50]:
        lines.append(f"    applied {item}")
    for item in report.pruned[:50]:
        lines.append(f"    pruned {item}")
    for name in report.rejected:
        lines.append(f"    rejected {name}")
    for item in report.unauthorized:
        lines.append(f"  NOT AUTHORIZED {item}")
    for item in report.errors:
        lines.append(f"  error: {item}")
    lines.append("  builds: " + ", ".join(f"{n} {p}" for p, n in sorted(report.phases.items())))
    if report.status_commit:
        lines.append(f"  status commit {report.status_commit[:12]} ({report.status_result}, "
                     f"{len(report.status_files)} files)")
    else:
        lines.append(f"  status: {report.status_result} (nothing to commit)" if report.status_result == "unchanged"
                     else f"  status: {report.status_result}")
    return "\n".join(lines)
