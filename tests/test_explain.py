"""`image-factory explain`: run as a user would, on every build of examples-repo."""

from __future__ import annotations

import json

import pytest

from reconciler.models.status import Selection

from .helpers import EXAMPLES, cli, copy_examples, git, init_repo

BUILDS = sorted(p.relative_to(EXAMPLES).as_posix() for p in (EXAMPLES / "builds").glob("*/*.yaml"))
HEALTH = """\
prod-us-east-1: {state: Healthy, tekton: true}
aks-westeurope: {state: Degraded, reason: 2 of 3 nodes NotReady}
gke-europe-west4: {state: Unhealthy, reason: API server unreachable}
"""


def flat(text: str) -> str:
    """The text with line wrapping undone (explain wraps to the terminal width)."""
    return " ".join(text.split())


def test_examples_have_builds():
    assert len(BUILDS) >= 15


@pytest.mark.parametrize("rel", BUILDS)
def test_every_example_build_gets_a_decision(rel):
    proc = cli("explain", str(EXAMPLES / rel), "--output", "json")
    assert proc.returncode in (0, 1), proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["state"] in ("Admitted", "Queued", "Rejected")
    assert decision["reason"].strip()
    assert decision["alternatives"], "every example has other pools, each with why it lost"
    assert all(a["reason"] for a in decision["alternatives"])
    assert decision["path"] and decision["path"][0]["rule"] == "Who chooses?"
    assert proc.returncode == (1 if decision["state"] == "Rejected" else 0)
    status = {k: decision[k] for k in ("infrastructure", "provider", "pool", "reason", "confidence")}
    status["alternatives"] = [{k: a[k] for k in ("provider", "pool", "reason", "score")} for a in decision["alternatives"]]
    Selection.model_validate(status)


@pytest.mark.parametrize("rel,words", [
    ("builds/ml/trainer.yaml", ["Decision    ADMITTED", "prod-us-east-1 / pool eks-gpu", "GPU and high memory required",
                                "How it was decided, step by step:", "K8s available?", "out at step"]),
    ("builds/ml/model-airgap.yaml", ["Air-gapped builds run on build nodes", "(build nodes)"]),
    ("builds/platform/rhel7-compat.yaml", ["Legacy-system builds run on build nodes"]),
    ("builds/platform/fpga-toolchain.yaml", ["Custom hardware xilinx-fpga required"]),
    ("builds/web/storybook.yaml", ["Placement gke-europe-west4/gke-general requested"]),
])
def test_text_reads_as_a_story(rel, words):
    proc = cli("explain", str(EXAMPLES / rel))
    assert proc.returncode == 0, proc.stderr
    out = flat(proc.stdout)
    for word in words:
        assert flat(word) in out
    assert "Acting as any member of team" in out  # examples-repo is not a Git repository of its own
    assert "Health not checked" in out
    assert "Confidence = score x (0.75 + 0.25 x lead)" in out


def test_health_file_changes_the_decision(tmp_path):
    health = tmp_path / "health.yaml"
    health.write_text(HEALTH + "nowhere: {state: Healthy}\n")
    proc = cli("explain", str(EXAMPLES / "builds/ml/inference.yaml"), "--health", str(health))
    assert proc.returncode == 0
    out = flat(proc.stdout)
    assert "prod-us-east-1 / pool eks-gpu" in out
    assert "gke-europe-west4: API server unreachable" in out
    assert "aks-westeurope is Degraded: 2 of 3 nodes NotReady" in out
    assert "nowhere: no such provider" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("prod-us-east-1: {state: Sick}\n")
    assert "is not one of" in cli("explain", str(EXAMPLES / "builds/ml/inference.yaml"), "--health", str(bad)).stderr


def test_actor_flag_grants_or_denies_force():
    rel = str(EXAMPLES / "builds/platform/base-debug.yaml")
    admin = json.loads(cli("explain", rel, "--actor", "alice@acme.example", "-o", "json").stdout)
    assert admin["state"] == "Admitted" and admin["reason"].startswith("Admin override")
    dev = cli("explain", rel, "--actor", "paul@acme.example")
    assert dev.returncode == 1
    out = flat(dev.stdout)
    assert "paul@acme.example: given with --actor; role developer" in out
    assert "infrastructure:manage" in out and "REJECTED" in out


def test_default_actor_is_the_last_commit_author(tmp_path):
    repo = copy_examples(tmp_path / "repo")
    init_repo(repo)
    (repo / "builds/web/edge-proxy.yaml").write_text((repo / "builds/web/edge-proxy.yaml").read_text() + "\n")
    git(repo, "commit", "-q", "-am", "touch", env={"GIT_AUTHOR_EMAIL": "molly@acme.example"})
    proc = cli("explain", str(repo / "builds/web/edge-proxy.yaml"))
    assert "Acting as molly@acme.example: last commit author" in flat(proc.stdout)
    assert proc.returncode == 1 and "infrastructure:select" in proc.stdout  # molly is a contributor
    other = cli("explain", "builds/web/storybook.yaml", cwd=repo)  # found from a relative path too
    assert "test@example.com" in other.stdout and "not a member in factory.yaml" in flat(other.stdout)


def test_repo_is_found_from_anywhere_and_bad_input_is_explained(tmp_path):
    proc = cli("explain", "builds/web/frontend.yaml", cwd=EXAMPLES)
    assert proc.returncode == 0 and "builds/web/frontend.yaml: frontend (team web)" in flat(proc.stdout)
    missing = cli("explain", "nope.yaml")
    assert missing.returncode == 2 and "no such file" in missing.stderr
    outside = tmp_path / "x.yaml"
    outside.write_text("kind: BuildRequest\n")
    assert cli("explain", str(outside)).returncode == 2
    not_build = cli("explain", str(EXAMPLES / "pools/eks-gpu.yaml"))
    assert not_build.returncode == 2 and "builds/<team>/" in not_build.stderr


def test_invalid_build_file_points_at_the_problem(tmp_path):
    repo = copy_examples(tmp_path / "repo")
    path = repo / "builds/web/frontend.yaml"
    path.write_text(path.read_text().replace("method: docker", "method: dockr"))
    proc = cli("explain", str(path))
    assert proc.returncode == 1
    assert "builds/web/frontend.yaml" in proc.stderr and "spec.method" in proc.stderr
