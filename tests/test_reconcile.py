"""`reconcile --once` end to end: a real bare remote, a real API server, status back in Git."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from .helpers import cli, git
from .test_diff_live import local_repo

pytestmark = pytest.mark.controlplane

ALICE = {"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@acme.example",
         "GIT_COMMITTER_NAME": "Alice", "GIT_COMMITTER_EMAIL": "alice@acme.example"}
WENDY = {"GIT_AUTHOR_NAME": "Wendy", "GIT_AUTHOR_EMAIL": "wendy@acme.example",
         "GIT_COMMITTER_NAME": "Wendy", "GIT_COMMITTER_EMAIL": "wendy@acme.example"}


@pytest.fixture()
def setup(control_plane, tmp_path: Path):
    prefix = f"r{uuid.uuid4().hex[:6]}-"
    src = local_repo(tmp_path, control_plane.kubeconfig, prefix)
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "initial", env=ALICE)
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(remote))
    git(src, "remote", "add", "origin", str(remote))
    yield control_plane, src, remote, tmp_path / "work", prefix
    for team in ("web", "data"):
        control_plane.kubectl("delete", "namespace", f"{prefix}{team}", "--wait=false", check=False)


def _pass(remote: Path, work: Path, *extra: str) -> tuple[int, dict]:
    proc = cli("reconcile", "--once", "--repo", str(remote), "--workdir", str(work), "-o", "json", *extra)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _status(remote: Path, path: str) -> dict:
    text = git(remote, "show", f"main:{path}")
    return yaml.safe_load(text).get("status") or {}


def _set_run_status(cp, namespace: str, name: str, status: str, reason: str) -> None:
    path = f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns/{name}/status"
    body = {"status": {"conditions": [{"type": "Succeeded", "status": status, "reason": reason,
                                       "message": f"Tekton says {reason}",
                                       "lastTransitionTime": "2026-11-23T10:00:00Z"}],
                       "startTime": "2026-11-23T09:58:00Z", "completionTime": "2026-11-23T10:00:00Z"}}
    code, answer = cp.request("PATCH", path, body, content_type="application/merge-patch+json")
    assert code == 200, answer


def test_push_build_see_status_play_tekton_then_nothing(setup):
    cp, src, remote, work, prefix = setup
    code, report = _pass(remote, work)
    assert code == 0, report
    runs = [a for a in report["applied"] if "PipelineRun" in a]
    assert len(runs) == 3, report["applied"]
    assert report["status"]["result"] == "pushed" and len(report["status"]["files"]) == 3
    status = _status(remote, "builds/web/frontend.yaml")
    assert status["phase"] == "Pending"
    assert status["selection"]["pool"] == "local-general" and status["selection"]["reason"]
    assert status["run"]["cluster"] == "local" and status["run"]["namespace"] == f"{prefix}web"
    last = git(remote, "log", "-1", "--format=%an|%s|%b", "main")
    assert last.startswith("image-factory|status: 3 builds updated|Source-Revision: ")

    # Tekton finishes the run; the next pass commits Succeeded, keeping the original reason.
    _set_run_status(cp, status["run"]["namespace"], status["run"]["name"], "True", "Succeeded")
    failed = _status(remote, "builds/web/checkout-api.yaml")["run"]
    _set_run_status(cp, failed["namespace"], failed["name"], "False", "PipelineRunTimeout")
    code, report = _pass(remote, work)
    assert report["applied"] == [] and report["status"]["result"] == "pushed"
    assert _status(remote, "builds/web/frontend.yaml")["phase"] == "Succeeded"
    checkout = _status(remote, "builds/web/checkout-api.yaml")
    assert checkout["phase"] == "Failed"
    assert any(c["type"] == "Succeeded" and c["reason"] == "PipelineRunTimeout" for c in checkout["conditions"])

    # A third pass has nothing to apply and nothing to commit.
    head = git(remote, "rev-parse", "main").strip()
    code, report = _pass(remote, work)
    assert report["applied"] == [] and report["status"]["result"] == "unchanged"
    assert git(remote, "rev-parse", "main").strip() == head


def test_status_commit_keeps_the_users_bytes_and_the_users_later_commits(setup):
    cp, src, remote, work, prefix = setup
    path = src / "builds/web/frontend.yaml"
    odd = path.read_text().replace("spec:\n", "spec:   # the storefront   \n\n", 1) + "# trailing comment\n"
    path.write_text(odd)
    git(src, "commit", "-qam", "odd formatting", env=WENDY)
    git(src, "push", "-q", "origin", "main")
    _pass(remote, work)
    after = git(remote, "show", "main:builds/web/frontend.yaml")
    body = odd[: -len("# trailing comment\n")]
    assert after.startswith(body) and after.endswith("# trailing comment\n")  # every user byte kept
    assert after[len(body):].startswith("status:\n  phase: Pending\n")
    # A user pushes after our status commit: their commit stays, the next pass builds on it.
    git(src, "pull", "-q", "--rebase", "origin", "main", env=WENDY)
    (src / "builds/web/new.yaml").write_text(path.read_text().split("status:")[0].replace("name: frontend", "name: new"))
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "a new build", env=WENDY)
    user_commit = git(src, "rev-parse", "HEAD").strip()
    git(src, "push", "-q", "origin", "main")
    code, report = _pass(remote, work)
    assert code == 0, report
    assert git(remote, "merge-base", "--is-ancestor", user_commit, "main", check=False) == ""
    assert _status(remote, "builds/web/new.yaml")["phase"] == "Pending"


def test_unauthorized_provider_change_is_not_applied(setup):
    cp, src, remote, work, prefix = setup
    _pass(remote, work)
    git(src, "pull", "-q", "--rebase", "origin", "main", env=WENDY)
    pool = src / "pools/local-general.yaml"
    pool.write_text(pool.read_text().replace("methods: [docker, kaniko, buildx, packer, nix, paketo]", "methods: [nix]"))
    git(src, "commit", "-qam", "wendy narrows the pool", env=WENDY)
    git(src, "push", "-q", "origin", "main")
    code, report = _pass(remote, work)
    assert code == 1
    assert any(u.startswith("pools/local-general.yaml: commit ") and "wendy@acme.example" in u
               and "infrastructure:configure" in u for u in report["unauthorized"]), report["unauthorized"]
    # The docker builds are still admitted on the pool as it was.
    assert _status(remote, "builds/web/frontend.yaml")["phase"] in ("Pending", "Running")
    assert report["rejected"] == []


def test_broken_file_and_down_cluster_do_not_stop_the_others(setup, tmp_path: Path):
    cp, src, remote, work, prefix = setup
    (src / "builds/data/etl-runner.yaml").write_text("kind: [\n")
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(Path(cp.kubeconfig).read_text().replace(cp.server, "https://127.0.0.1:1"))
    (src / "providers/down.yaml").write_text((src / "providers/local.yaml").read_text()
                                             .replace("name: local", "name: down").replace(str(cp.kubeconfig), str(bad)))
    (src / "pools/down-general.yaml").write_text((src / "pools/local-general.yaml").read_text()
                                                 .replace("name: local-general", "name: down-general")
                                                 .replace("provider: local", "provider: down"))
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "break things", env=ALICE)
    git(src, "push", "-q", "origin", "main")
    code, report = _pass(remote, work)
    assert report["providers"]["down"] == "Unhealthy" and report["providers"]["local"] in ("Healthy", "Degraded")
    assert sum(1 for a in report["applied"] if "PipelineRun" in a) == 2
    assert report["pruned"] == []  # a file failed to load: nothing is pruned


def test_unreachable_remote_is_exit_2(tmp_path: Path):
    proc = cli("reconcile", "--once", "--repo", str(tmp_path / "no-such-remote.git"), "--workdir", str(tmp_path / "w"))
    assert proc.returncode == 2 and "error" in proc.stderr


def test_a_full_pass_never_shows_a_sealed_credential(control_plane, tmp_path: Path):
    """The marker sweep through a real pass: the provider's sealed token is a marker the
    API server refuses; it is opened and used, and must appear in no output and no file."""
    from reconciler import sealing

    from .test_sealing import MARKER, TEST_KEY, TEST_PUB, _leaks

    prefix = f"s{uuid.uuid4().hex[:6]}-"
    src = local_repo(tmp_path, control_plane.kubeconfig, prefix, builds=("web/frontend",))
    pub = sealing.load_public_key(TEST_PUB)
    ca = Path(control_plane.ca_file).read_bytes()
    (src / "providers/local.yaml").write_text(f"""\
apiVersion: imagefactory.dev/v1alpha1
kind: Provider
metadata:
  name: local
spec:
  type: kubernetes
  endpoint: {control_plane.server}
  auth:
    method: service-account-token
  credentials:
    token: {sealing.seal(pub, "local", "token", MARKER)}
    caCert: {sealing.seal(pub, "local", "caCert", ca)}
  nodePools:
    - name: general
""")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "initial", env=ALICE)
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(remote))
    env = {"IMAGE_FACTORY_SEALING_KEYS": str(TEST_KEY)}
    outputs = []
    for args in (["reconcile", "--once", "--repo", str(remote), "--workdir", str(tmp_path / "w")],
                 ["reconcile", "--once", "--repo", str(remote), "--workdir", str(tmp_path / "w"), "-o", "json"],
                 ["diff", "--repo", str(src)], ["diff", "--repo", str(src), "-o", "json"]):
        proc = cli(*args, env=env)
        outputs.append(proc.stdout + proc.stderr)
        assert proc.returncode in (1, 2), proc.stdout + proc.stderr
    assert "Unauthorized" in outputs[0] or "401" in outputs[0], outputs[0]
    for text in outputs:
        assert not _leaks(text), text
    for file in tmp_path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            assert not _leaks(file.read_bytes()), f"{file} contains the credential"


def test_run_drives_real_passes_and_stops_cleanly(setup):
    """`image-factory run` with the real pass: polls, commits status, survives, exits 0 on SIGTERM."""
    import signal
    import subprocess
    import sys
    import time

    cp, src, remote, work, prefix = setup
    proc = subprocess.Popen([sys.executable, "-m", "reconciler", "run", "--repo", str(remote), "--workdir", str(work),
                             "--listen", "127.0.0.1:0", "--poll-interval", "1s"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if git(remote, "log", "-1", "--format=%an", "main").strip() == "image-factory":
                break
            time.sleep(0.5)
        assert _status(remote, "builds/web/frontend.yaml").get("phase") == "Pending"
        time.sleep(3)  # a few more (unchanged) passes
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out and " ok in " in out, out
