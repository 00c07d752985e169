"""What a long-lived process holds between passes, and what a pass holds at its peak.

Not thresholds on RSS (the machine and the allocator decide those) but the structures that
made a process with 10,000 builds reach 480 MB: every version of every file kept by the
loader, two million "why not this pool" sentences built to write ten per build, a status
block per build where a thousand different ones exist, renders of builds no pass uses.
"""

from __future__ import annotations

import copy
import gc
import weakref
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.desired import CachingRenderer, compute_desired
from reconciler.models import BuildRequest
from reconciler.rendering import Renderer
from reconciler.selection import Actor, Catalog, select_all
from reconciler.source.loading import Loader

from .helpers import copy_examples, git, init_repo
from .test_selection_world import ADMIN, DEVELOPER, build, node, pool, provider

STATUS = {
    "phase": "Queued",
    "observedRevision": "0123456789abcdef0123456789abcdef01234567",
    "selection": {
        "infrastructure": "kubernetes", "provider": "p1", "pool": "pool1",
        "reason": "Docker builds run on Kubernetes; p1/pool1 is the best pool with a free slot",
        "confidence": 0.6,
        "alternatives": [{"provider": "p1", "pool": f"pool{i}", "reason": f"full ({i}/{i} builds running)",
                          "score": 0.8} for i in range(2, 12)],
    },
    "conditions": [{"type": "Scheduled", "status": "False", "reason": "Queued", "message": "waits for a slot",
                    "lastTransitionTime": "2026-01-01T00:00:00Z"}],
}


def _request(name: str, status: dict | None) -> dict:
    doc = {"apiVersion": "imagefactory.dev/v1alpha1", "kind": "BuildRequest", "metadata": {"name": name},
           "spec": {"method": "docker", "source": {"git": "https://git.example.com/a.git"},
                    "image": "registry.example.com/a:1"}}
    if status is not None:
        doc["status"] = status
    return doc


# --- selection: ten alternatives written, not two hundred ------------------------------------

def _many_pools_catalog() -> Catalog:
    providers = [provider("big", "kubernetes", [node("general")])]
    pools = [pool(f"pool{i:02d}", "big", "general") for i in range(30)]
    return Catalog.build(providers, pools)


def test_a_status_writes_its_alternatives_without_making_the_others():
    catalog = _many_pools_catalog()
    builds = [build(name="plain"), build(name="chooser", infrastructure="kubernetes")]
    decisions = select_all(builds, catalog, actor=lambda b: Actor("dev", DEVELOPER if b.metadata.name == "plain"
                                                                  else frozenset()))
    admitted, refused = decisions["plain"], decisions["chooser"]
    assert admitted.state == "Admitted" and refused.state == "Rejected"
    for decision in (admitted, refused):
        block = decision.to_status(10)
        assert "not built yet" in repr(decision.alternatives)  # nothing of the 29 was kept
        everything = list(decision.alternatives)  # what explain shows
        assert len(everything) > 10
        assert block["alternatives"] == [a.to_dict() for a in everything[:10]]
        assert decision.alternatives.first(3) == tuple(everything[:3])


def test_equal_decisions_write_one_status_block():
    catalog = _many_pools_catalog()
    builds = [build(name="one", infrastructure="kubernetes"), build(name="two", infrastructure="kubernetes")]
    decisions = select_all(builds, catalog, actor=Actor("dev", frozenset()))
    one, two = decisions["one"], decisions["two"]
    assert one is not two and one.state == two.state == "Rejected"
    assert one.to_status(10) is two.to_status(10)  # the loop keeps one such block per build
    admitted = select_all([build(name="three")], catalog, actor=Actor("dev", DEVELOPER))["three"]
    block = admitted.to_status(10)
    assert block is not one.to_status(10) and block["pool"] == admitted.pool


# --- the loader: one version of each file, and no status lines --------------------------------

def test_the_loader_lets_earlier_versions_of_files_go(tmp_path: Path):
    repo = copy_examples(tmp_path / "repo")
    init_repo(repo)
    loader = Loader()
    first = loader.load_revision(str(repo))
    name = sorted(first.builds)[0]
    earlier = weakref.ref(first.builds[name].model)
    files = sorted((repo / "builds").rglob("*.yaml"))
    for path in files:  # as a status commit does: every build file changes
        path.write_text(path.read_text() + "# touched\n")
    git(repo, "commit", "-qam", "touch every build")
    del first
    second = loader.load_revision(str(repo))
    assert loader.parsed == len(files)
    gc.collect()
    assert earlier() is None, "the loader still holds the previous version of a file that changed"
    assert second.builds[name].model is not None


def test_status_lines_are_not_kept_but_spec_lines_are(tmp_path: Path):
    repo = copy_examples(tmp_path / "repo")
    path = sorted((repo / "builds").rglob("*.yaml"))[0]
    path.write_text(path.read_text().rstrip("\n") + "\nstatus:\n  phase: Queued\n  conditions: []\n")
    snap = Loader().load_directory(str(repo))
    entity = next(e for e in snap.builds.values() if e.path == str(path.relative_to(repo)))
    assert entity.model.status.phase == "Queued"
    text = path.read_text().splitlines()
    assert not any(p and p[0] == "status" for p in entity.lines)
    method_line = entity.lines[("spec", "method")]
    assert text[method_line - 1].strip().startswith("method:")


# --- models: equal status values are one object ------------------------------------------------

def test_equal_status_blocks_share_their_values():
    a = BuildRequest.model_validate(_request("a", copy.deepcopy(STATUS)))
    b = BuildRequest.model_validate(_request("b", copy.deepcopy(STATUS)))
    assert a.status.selection is b.status.selection
    assert a.status.conditions[0] is b.status.conditions[0]
    other = copy.deepcopy(STATUS)
    other["selection"]["alternatives"][0]["reason"] = "full (3/3 builds running)"
    c = BuildRequest.model_validate(_request("c", other))
    assert c.status.selection is not a.status.selection
    assert c.status.selection.alternatives[0].reason == "full (3/3 builds running)"
    assert c.status.selection.alternatives[1] is a.status.selection.alternatives[1]  # the unchanged ones


def test_sharing_never_skips_a_check():
    for _ in range(2):  # the second time would come from the table if a failure were kept
        bad = copy.deepcopy(STATUS)
        bad["selection"]["alternatives"][0]["colour"] = "green"
        with pytest.raises(ValidationError):
            BuildRequest.model_validate(_request("a", bad))
        flipped = copy.deepcopy(STATUS)
        flipped["conditions"][0]["status"] = True  # a bool, not the text "True"
        with pytest.raises(ValidationError):
            BuildRequest.model_validate(_request("a", flipped))
    zero = copy.deepcopy(STATUS)
    zero["selection"]["confidence"] = 0.0
    negative = copy.deepcopy(STATUS)
    negative["selection"]["confidence"] = -0.0
    assert BuildRequest.model_validate(_request("a", zero)).status.selection is not \
        BuildRequest.model_validate(_request("a", negative)).status.selection


# --- desired state and the render cache --------------------------------------------------------

def test_desired_state_does_not_hold_the_snapshot(tmp_path: Path):
    snap = Loader().load_directory(str(copy_examples(tmp_path / "repo")))
    models = [weakref.ref(e.model) for e in snap.builds.values()]
    desired = compute_desired(snap, renderer=Renderer(), revision="r1")
    assert desired.rendered.builds and desired.sources()
    del snap
    gc.collect()
    assert all(ref() is None for ref in models), "the Desired kept the repository's models alive"


def test_the_render_cache_keeps_only_what_the_last_pass_used(tmp_path: Path):
    snap = Loader().load_directory(str(copy_examples(tmp_path / "repo")))
    cache = CachingRenderer(Renderer())
    first = compute_desired(snap, renderer=cache.begin({}), revision="r1")
    admitted = sorted(first.rendered.builds)
    assert len(admitted) > 2 and cache.held() == len(admitted)
    again = compute_desired(snap, renderer=cache.begin({}), revision="r1")
    assert cache.hits == len(admitted) and again.rendered.builds == first.rendered.builds
    # A pass that renders only one build: the others' renders are gone when it ends.
    compute_desired(snap, builds=admitted[:1], renderer=cache.begin({}), revision="r1")
    assert cache.held() == 1


def test_the_render_cache_holds_the_factory_its_keys_name(tmp_path: Path):
    snap = Loader().load_directory(str(copy_examples(tmp_path / "repo")))
    cache = CachingRenderer(Renderer())
    compute_desired(snap, renderer=cache.begin({}), revision="r1")
    factory = weakref.ref(snap.factory.model)
    del snap
    gc.collect()
    # Keys name factory.yaml by the id of its model: while they exist the model must, or a
    # new factory.yaml's model could get the same id and hit renders made for the old one.
    assert factory() is not None


# --- a new renderer per pass, the same compiled templates; the loaded models frozen -----------

def test_a_new_template_store_takes_the_last_ones_compiled_templates(tmp_path: Path):
    import shutil

    from reconciler.rendering.templates import DEFAULT_ROOT, TemplateStore

    root = tmp_path / "pipeline-templates"
    shutil.copytree(DEFAULT_ROOT, root)
    first = TemplateStore(root)
    pipeline, _ = first.pipeline(first.get("docker"))
    second = TemplateStore(root)
    second.reuse(first)
    assert second.pipeline(second.get("docker"))[0] is pipeline  # not compiled again
    # A template edited on disk meanwhile is compiled again.
    source = root / "docker" / "pipeline.yaml.j2"
    source.write_text(source.read_text().replace("kind: Pipeline", "kind: Pipeline\n# edited", 1))
    third = TemplateStore(root)
    third.reuse(second)
    assert third.pipeline(third.get("docker"))[0] is not pipeline


def test_a_big_load_freezes_what_it_made_and_a_small_one_does_not(tmp_path: Path, monkeypatch):
    import reconciler.source.loading as loading

    calls = []
    monkeypatch.setattr(loading, "_freeze", lambda: calls.append(1))
    repo = copy_examples(tmp_path / "repo")
    monkeypatch.setattr(loading, "FREEZE_AFTER", 10)
    loader = Loader()
    loader.load_directory(str(repo))
    assert loader.parsed >= 10 and calls == [1]
    path = sorted((repo / "builds").rglob("*.yaml"))[0]
    path.write_text(path.read_text() + "# touched\n")
    loader.load_directory(str(repo))
    assert loader.parsed == 1 and calls == [1]
