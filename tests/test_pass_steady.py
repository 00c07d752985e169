"""A pass with nothing new does no work: no selection, no rendering, no status computed or written."""

from __future__ import annotations

from pathlib import Path

from reconciler.loop.passing import PassOptions, Reconciler

from .helpers import copy_examples, git, init_repo
from .test_reconcile import WENDY


def _remote(tmp_path: Path) -> tuple[Path, Path]:
    src = copy_examples(tmp_path / "src")
    init_repo(src)
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(remote))
    git(src, "remote", "add", "origin", str(remote))
    return src, remote


def test_a_pass_with_nothing_new_reuses_everything_and_a_change_recomputes(tmp_path, monkeypatch):
    import reconciler.desired as desired_module

    src, remote = _remote(tmp_path)
    reconciler = Reconciler(PassOptions(str(remote), str(tmp_path / "work"), branch="main", offline=True,
                                        write_status_offline=True))
    computed = []
    real = desired_module.compute_desired
    monkeypatch.setattr(desired_module, "compute_desired", lambda *a, **k: computed.append(1) or real(*a, **k))
    try:
        first = reconciler.run_once()
        assert first.status_result == "pushed"
        # Until the statuses settle (builds that got a run keep their slot), passes may write.
        for _ in range(3):
            settled = reconciler.run_once()
            if settled.status_result == "unchanged":
                break
        assert settled.status_result == "unchanged"
        before, head = len(computed), git(remote, "rev-parse", "main").strip()

        steady = reconciler.run_once()
        assert len(computed) == before  # no selection, no rendering
        assert "write-back" not in steady.steps and steady.status_result == "unchanged"
        assert steady.build_phases == settled.build_phases and steady.rejected == settled.rejected
        assert steady.placements == settled.placements and steady.exit_code == settled.exit_code
        assert git(remote, "rev-parse", "main").strip() == head

        # Someone commits: selection and rendering run again and the new build gets its status.
        git(src, "pull", "-q", "origin", "main")
        text = (src / "builds/web/frontend.yaml").read_text().split("\nstatus:")[0]
        (src / "builds/web/frontend-next.yaml").write_text(text.replace("name: frontend", "name: frontend-next") + "\n")
        git(src, "add", "-A")
        git(src, "commit", "-q", "-m", "a new build", env=WENDY)  # a web developer (factory.yaml)
        git(src, "push", "-q", "origin", "HEAD:main")
        changed = reconciler.run_once()
        assert len(computed) == before + 1 and "frontend-next" in changed.build_phases, (changed.errors, changed.rejected, sorted(changed.build_phases))
        assert changed.status_result == "pushed"
        assert changed.status_files == ["builds/web/frontend-next.yaml"]  # nobody else's status moved
        # The other builds' statuses were not computed again, and the report still has them all.
        assert {n: p for n, p in changed.build_phases.items() if n != "frontend-next"} == settled.build_phases
        assert {n: p for n, p in changed.placements.items() if n != "frontend-next"} == settled.placements
        assert sorted(changed.rejected) == sorted(settled.rejected) and changed.queued == settled.queued
    finally:
        reconciler.close()


def test_standing_reads_runs_and_pools_from_status(tmp_path):
    """What every command that selects (reconcile, diff, review, render) treats as placed."""
    from reconciler.desired import standing_of
    from reconciler.source.loading import Loader

    src = copy_examples(tmp_path / "src")
    path = src / "builds/web/frontend.yaml"
    path.write_text(path.read_text() + """\
status:
  phase: Running
  observedRevision: abc123
  selection:
    infrastructure: kubernetes
    provider: prod-us-east-1
    pool: eks-general
    reason: picked
    confidence: 0.9
  run:
    cluster: prod-us-east-1
    namespace: if-web
    name: frontend-1
    kind: PipelineRun
""")
    snap = Loader().load_directory(str(src))
    assert not snap.problems, snap.problems
    assert standing_of(snap) == ({"frontend": "running"}, {"frontend": "eks-general"})
    # A build whose spec now comes from another revision is a new request.
    assert standing_of(snap, {"frontend": "def456"}) == ({}, {})
    assert standing_of(snap, {"frontend": "abc123"})[0] == {"frontend": "running"}
