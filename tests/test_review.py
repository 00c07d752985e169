"""`image-factory review` on scripted histories in real Git repositories, and `diff --against`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from reconciler.reports import MARKDOWN_LIMIT, review_markdown
from reconciler.reviewing import review

from .helpers import EXAMPLES, cli, copy_examples, git

ADMIN = ("Alice Admin", "alice@acme.example")
WENDY = ("Wendy Web", "wendy@acme.example")
MIKE = ("Mike ML", "mike@acme.example")


def commit_as(repo: Path, who: tuple[str, str], message: str, *extra: str) -> str:
    git(repo, "add", "-A")
    env = {"GIT_AUTHOR_NAME": who[0], "GIT_AUTHOR_EMAIL": who[1], "GIT_COMMITTER_NAME": who[0],
           "GIT_COMMITTER_EMAIL": who[1]}
    git(repo, *extra, "commit", "-q", "-m", message, env=env)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    repo = copy_examples(tmp_path / "repo")
    git(repo, "init", "-q", "-b", "main")
    commit_as(repo, ADMIN, "initial")
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def _new_build(repo: Path, team: str, name: str, extra: str = "") -> None:
    text = (repo / "builds/web/frontend.yaml").read_text().replace("name: frontend", f"name: {name}")
    (repo / f"builds/{team}/{name}.yaml").write_text(text.replace("  method: docker\n", "  method: docker\n" + extra))


def test_user_adds_a_build_of_their_team(repo: Path):
    _new_build(repo, "web", "frontend-beta")
    commit_as(repo, WENDY, "web: beta frontend")
    proc = cli("review", "--repo", str(repo), "--base", "main", "--head", "pr")
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.startswith("Mergeable: no validation errors, no permission violations. 1 to create")
    assert "frontend-beta (added, builds/web/frontend-beta.yaml): Admitted on prod-us-east-1/eks-general" in proc.stdout
    assert "+ create  PipelineRun if-web/frontend-beta-" in proc.stdout


@pytest.mark.parametrize("change,path,permission", [
    ("provider", "providers/prod-us-east-1.yaml", "infrastructure:configure"),
    ("other-team", "builds/ml/trainer.yaml", "team"),
    ("force", "builds/web/frontend.yaml", "infrastructure:manage"),
])
def test_user_violations_name_commit_file_and_permission(repo: Path, change: str, path: str, permission: str):
    target = repo / path
    text = target.read_text()
    if change == "provider":
        text = text.replace("nodes: 6", "nodes: 60")
    elif change == "other-team":
        text = text.replace("timeout: 3h", "timeout: 5h")
    else:
        text = text.replace("  method: docker\n", "  method: docker\n  infrastructure: kubernetes\n  force: true\n")
    target.write_text(text)
    sha = commit_as(repo, WENDY, f"wendy changes {change}")
    proc = cli("review", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", "json")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    assert not data["mergeable"]
    violations = [v for c in data["commits"] for v in c["violations"]]
    assert [(v["commit"], v["path"], v["permission"], v["actor"]) for v in violations if v["permission"] == permission] == [
        (sha, path, permission, "wendy@acme.example")]


def test_admin_adds_a_pool_and_sees_the_plan(repo: Path):
    (repo / "pools/eks-graviton-large.yaml").write_text(
        (repo / "pools/eks-graviton.yaml").read_text().replace("name: eks-graviton", "name: eks-graviton-large")
        .replace("maxConcurrentBuilds: 6", "maxConcurrentBuilds: 12").replace('teams: ["*"]', "teams: [mobile]")
        .replace("  description: Native arm64 builds on Graviton.", "  priority: 50"))
    commit_as(repo, ADMIN, "platform: a bigger Graviton pool for mobile")
    result = review(str(repo), "main", "pr")
    assert result.mergeable, result.blockers()
    assert result.plan.changes, "a new pool that wins a build must show in the plan"
    moved = {e.build for e in result.plan.changes if e.action == "create"}
    assert "api-arm" in moved
    md = review_markdown(result)
    assert md.startswith("### :white_check_mark: image-factory review: Mergeable")
    assert "<details><summary><b>prod-us-east-1</b>" in md and "```diff" in md


def test_broken_yaml_still_reports_permissions_and_the_rest(repo: Path):
    (repo / "builds/web/frontend.yaml").write_text("kind: [\n")
    (repo / "providers/rancher-edge.yaml").unlink()
    commit_as(repo, WENDY, "oops")
    proc = cli("review", "--repo", str(repo), "--base", "main", "--head", "pr")
    assert proc.returncode == 1
    assert "builds/web/frontend.yaml:1: invalid YAML" in proc.stdout
    assert "providers/rancher-edge.yaml: deleted a provider, which needs infrastructure:manage" in proc.stdout
    assert "4. Plan" in proc.stdout


def _ssh_key(tmp: Path, name: str) -> Path:
    key = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def test_signed_identity_mode(repo: Path, tmp_path: Path):
    alice = _ssh_key(tmp_path, "alice")
    git(repo, "checkout", "-q", "main")
    (repo / ".factory").mkdir()
    (repo / ".factory/allowed_signers").write_text(f"alice@acme.example {Path(str(alice) + '.pub').read_text()}")
    factory = repo / "factory.yaml"
    factory.write_text(factory.read_text().replace("    source: author\n",
                                                   "    source: signature\n    allowedSignersFile: .factory/allowed_signers\n"))
    commit_as(repo, ADMIN, "require signed identities")
    git(repo, "checkout", "-q", "-B", "pr")
    pool = repo / "pools/eks-gpu.yaml"
    pool.write_text(pool.read_text().replace("maxConcurrentBuilds: 3", "maxConcurrentBuilds: 4"))
    commit_as(repo, ADMIN, "unsigned, claiming to be alice")
    result = review(str(repo), "main", "pr")
    assert [v.actor for v in result.violations] == ["(no verified identity)"]
    git(repo, "reset", "-q", "--hard", "main")
    pool.write_text(pool.read_text().replace("maxConcurrentBuilds: 3", "maxConcurrentBuilds: 4"))
    commit_as(repo, ADMIN, "signed by alice", "-c", "gpg.format=ssh", "-c", f"user.signingkey={alice}", "-c",
              "commit.gpgsign=true")
    result = review(str(repo), "main", "pr")
    assert result.mergeable, [str(v) for v in result.violations]
    assert result.verdicts[0].actor == "alice@acme.example"


def test_markdown_stays_under_the_comment_limit(repo: Path):
    for i in range(400):
        _new_build(repo, "web", f"bulk-{i:03d}")
    commit_as(repo, WENDY, "400 builds")
    result = review(str(repo), "main", "pr")
    md = review_markdown(result)
    assert len(md) <= MARKDOWN_LIMIT
    assert "This comment was trimmed" in md
    assert md.count("```") % 2 == 0 and md.count("<details>") == md.count("</details>")


def test_review_never_prints_credentials(repo: Path):
    provider = repo / "providers/vks-onprem.yaml"
    sealed = [line for line in provider.read_text().splitlines() if "sealed:v1:" in line][0].split(": ", 1)[1]
    provider.write_text(provider.read_text().replace("nodes: 2", "nodes: 3"))
    commit_as(repo, ADMIN, "vks: one more node")
    for fmt in ("text", "markdown", "json"):
        out = cli("review", "--repo", str(repo), "--base", "main", "--head", "pr", "--format", fmt).stdout
        assert sealed not in out and "sealed:v1:" not in out


def test_diff_against_exit_codes(repo: Path):
    proc = cli("diff", "--repo", str(repo), "--rev", "pr", "--against", "main")
    assert proc.returncode == 0 and proc.stdout.strip().endswith("no changes")
    _new_build(repo, "web", "frontend-beta")
    commit_as(repo, WENDY, "beta")
    proc = cli("diff", "--repo", str(repo), "--rev", "pr", "--against", "main")
    assert proc.returncode == 1 and proc.stdout.strip().endswith("1 to create, 0 to change, 0 to prune on 1 cluster")
    data = json.loads(cli("diff", "--repo", str(repo), "--rev", "pr", "--against", "main", "-o", "json").stdout)
    assert data["counts"]["create"] == 1 and data["entries"][0]["build"] == "frontend-beta"
    assert cli("diff", "--repo", str(repo), "--against", "no-such-rev").returncode == 2


def test_example_ci_pipelines_call_review_with_real_flags():
    import shlex

    import yaml as pyyaml

    from reconciler.cli import build_parser

    workflow = pyyaml.safe_load((EXAMPLES / ".github/workflows/image-factory-review.yaml").read_text())
    gitlab = pyyaml.safe_load((EXAMPLES / ".ci/gitlab-ci.yml").read_text())
    scripts = [s.get("run", "") for s in workflow["jobs"]["review"]["steps"]] + gitlab["image-factory-review"]["script"]
    calls = [line.strip() for text in scripts for line in text.splitlines() if line.strip().startswith("image-factory review")]
    assert len(calls) == 2
    for call in calls:
        argv = shlex.split(call.split(">")[0])[1:]
        args = build_parser().parse_args([a.replace("${{ github.base_ref }}", "main") for a in argv])
        assert args.format == "markdown" and args.base.startswith("origin/")
