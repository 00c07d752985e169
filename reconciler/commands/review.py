"""Review a change to the GitOps repository (a PR): can it merge?

Reports, for BASE..HEAD of a local clone:
  1. validation of HEAD: every error as file:line: field: message;
  2. permissions: each commit and the files it touched, checked against factory.yaml's
     roles as of BASE (users change only their team's builds; providers/, pools/ and
     factory.yaml need infrastructure:configure; deleting a provider or pool, or setting
     force, needs infrastructure:manage; placement needs infrastructure:select);
  3. selection for every added or changed build: provider, pool, reason, confidence;
  4. the plan: which objects would be created, changed or pruned on which cluster;
  5. a verdict.
No cluster is contacted and nothing is written. --format markdown is made to be posted as
a PR comment (verdict first, one collapsible section per cluster, under 65,536 characters).

  image-factory review --base origin/main --head HEAD --format markdown > comment.md

exit codes: 0 mergeable, 1 validation errors, permission violations or rejected builds,
2 the tool could not run (no such revision, not a Git repository).
"""

from __future__ import annotations

import argparse
import sys

from ._common import print_json, use_color

HELP = __doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the target branch or commit (e.g. origin/main)")
    parser.add_argument("--head", default="HEAD", help="the change's branch or commit (default: HEAD)")
    parser.add_argument("--repo", default=".", help="the local clone (default: .)")
    parser.add_argument("--format", "--output", "-o", dest="format", choices=("text", "markdown", "json"),
                        default="text", help="output format (default: text)")


def run(args: argparse.Namespace) -> int:
    from ..reports import review_json, review_markdown, review_text
    from ..reviewing import review

    result = review(args.repo, args.base, args.head)
    if args.format == "json":
        print_json(review_json(result))
    elif args.format == "markdown":
        sys.stdout.write(review_markdown(result))
    else:
        sys.stdout.write(review_text(result, color=use_color()))
    return 0 if result.mergeable else 1
