"""Explain which infrastructure a build gets, and why: the decision, every step, every other pool.

BUILD_FILE is a build request (builds/<team>/<name>.yaml). The repository is the folder
above it that holds factory.yaml, unless --repo says otherwise. Provider health comes from
--health FILE (YAML or JSON: provider -> {state, reason, tekton, buildkitController});
without it every provider is Unknown (usable, with lower confidence). Running builds per
pool come from each pool's status.running.

Permissions (placement needs infrastructure:select, force needs infrastructure:manage) are
those of --actor IDENTITY; without it, those of the file's last commit author when the
repository is a Git repository, else those every member of the build's team holds.

--output json prints exactly the Decision (a list if the file holds several builds).

exit codes: 0 admitted or queued, 1 rejected (or the build file is invalid), 2 could not run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ._common import add_output, print_json

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("build_file", metavar="BUILD_FILE", help="the build request, e.g. builds/web/frontend.yaml")
    parser.add_argument("--repo", default=None, help="repository folder (default: the folder above BUILD_FILE with factory.yaml)")
    parser.add_argument("--health", default=None, metavar="FILE",
                        help="provider health, YAML or JSON: {provider: {state, reason, tekton, buildkitController}}")
    parser.add_argument("--actor", default=None, metavar="IDENTITY",
                        help="whose permissions to use (a member identity from factory.yaml)")
    add_output(parser)


def find_repo(build_file: str) -> str | None:
    folder = os.path.dirname(os.path.abspath(build_file))
    while True:
        if any(os.path.isfile(os.path.join(folder, n)) for n in ("factory.yaml", "factory.yml")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def is_git_root(folder: str) -> bool:
    """Whether ``folder`` is the top of a Git work tree (a GitOps repository of its own)."""
    try:
        proc = subprocess.run(["git", "-C", folder, "rev-parse", "--show-toplevel"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    top = proc.stdout.strip()
    return proc.returncode == 0 and bool(top) and os.path.realpath(top) == os.path.realpath(folder)


def last_author(repo: str, rel: str) -> str | None:
    """The e-mail of the last commit that touched ``rel``, or None (not a Git repository, untracked)."""
    try:
        proc = subprocess.run(["git", "-C", repo, "log", "-1", "--format=%ae", "--", rel],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    author = proc.stdout.strip()
    return author if proc.returncode == 0 and author else None


def load_health(path: str | None, providers) -> tuple[dict, str, list[str]]:
    from ..errors import UsageError
    from ..selection import health_from_mapping

    if path is None:
        return {}, ("not checked (no --health FILE): every provider counts as usable, and confidence is lower "
                    "than it would be with a known health"), []
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not YAML or JSON: {str(exc).splitlines()[0]}") from None
    health, problems = health_from_mapping(data)
    problems = [f"{path}: {p}" for p in problems]
    for name in sorted(set(health) - set(providers)):
        problems.append(f"{path}: {name}: no such provider in the repository (ignored)")
    missing = sorted(set(providers) - set(health))
    states = ", ".join(f"{n} {h.state}" for n, h in sorted(health.items()) if n in providers)
    note = f"from {path}: {states or 'no known providers'}"
    if missing:
        note += f"; not listed, so Unknown: {', '.join(missing)}"
    return health, note, problems


def choose_actor(args, factory, repo: str, rel: str, team: str | None):
    from ..policy.roles import permissions_of, roles_of, team_permissions
    from ..selection import Actor

    def named(identity: str, how: str) -> Actor:
        roles = roles_of(factory, identity)
        if not roles:
            how += "; not a member in factory.yaml, so no permissions"
        else:
            how += f"; role{'s' * (len(roles) != 1)} {', '.join(roles)}"
        return Actor(identity, permissions_of(factory, identity), how)

    if args.actor:
        return named(args.actor, "given with --actor")
    author = last_author(repo, rel) if is_git_root(repo) else None
    if author:
        return named(author, f"last commit author of {rel}; pass --actor to check someone else")
    return Actor(None, team_permissions(factory, team),
                 f"any member of team {team} (assumed: no --actor was given, and the repository folder is not a Git "
                 "repository of its own, so there is no commit author to ask)")


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..selection import Catalog, needs_of, select
    from ..selection.explaining import Context, render
    from ..source.loading import Loader

    if not os.path.isfile(args.build_file):
        raise UsageError(f"{args.build_file}: no such file")
    repo = args.repo or find_repo(args.build_file)
    if repo is None:
        raise UsageError(f"{args.build_file}: no factory.yaml above it; pass --repo PATH")
    if not os.path.isdir(repo):
        raise UsageError(f"{repo}: not a directory")
    rel = os.path.relpath(os.path.abspath(args.build_file), os.path.abspath(repo)).replace(os.sep, "/")
    if rel.startswith("../") or not rel.startswith("builds/") or rel.count("/") < 2:
        raise UsageError(f"{args.build_file}: not a build request of {repo} (they live in builds/<team>/)")

    snap = Loader().load_directory(repo)
    own = [p for p in snap.problems if p.path == rel and p.severity == "error"]
    builds = sorted((b for b in snap.builds.values() if b.path == rel), key=lambda b: b.line)
    if own or not builds:
        for problem in own:
            print(problem, file=sys.stderr)
        if not own:
            print(f"{rel}: no build request in this file", file=sys.stderr)
        print(f"explain: fix {rel} first (image-factory validate {repo})", file=sys.stderr)
        return 1
    elsewhere = len({p.path for p in snap.errors})
    if elsewhere:
        print(f"note: {elsewhere} other file(s) of the repository have problems; their objects are left out "
              f"(image-factory validate {repo})", file=sys.stderr)

    health, health_note, warnings = load_health(args.health, snap.providers)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    catalog = Catalog.build(snap.providers, snap.pools, health, factory=snap.factory)
    busy = [f"{p.name} {p.running}/{p.max_builds}" for p in catalog.pools if p.running]
    load_note = ("from the pools' status.running: " + ", ".join(busy)) if busy else "no pool records running builds"

    results = []
    for build in builds:
        actor = choose_actor(args, snap.factory, repo, rel, build.team)
        decision = select(build, catalog, actor=actor)
        results.append(decision)
        if args.output != "json":
            if len(results) > 1:
                print("\n" + "=" * 72 + "\n")
            ctx = Context(rel, build.name, build.team, needs_of(build.model.spec), actor, health_note, load_note)
            print(render(decision, ctx))
    if args.output == "json":
        print_json(results[0].to_dict() if len(results) == 1 else [d.to_dict() for d in results])
    return 1 if any(d.state == "Rejected" for d in results) else 0
