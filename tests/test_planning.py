"""Planning: create / update / unchanged / prune, diffs, masking (pure logic on dicts)."""

from __future__ import annotations

from reconciler.planning import MASK, ObjectKey, make_plan, unified_diff


def _obj(kind="PipelineRun", name="frontend-abc", ns="if-web", build="frontend", spec=None, managed=True, **meta):
    labels = {"imagefactory.dev/build": build, "imagefactory.dev/pool": "eks-general"} if build else {}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "image-factory"
    return {"apiVersion": "tekton.dev/v1" if kind == "PipelineRun" else "v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns, "labels": labels, **meta}, "spec": spec or {"a": 1}}


def _live(obj, **extra):
    live = {**obj, "metadata": {**obj["metadata"], "uid": "u1", "resourceVersion": "7", "managedFields": [{}],
                                "creationTimestamp": "2026-11-23T00:00:00Z"}, "status": {"conditions": []}}
    live["spec"] = {**obj["spec"], **extra}
    return live


def test_create_update_unchanged_prune_and_summary():
    keep, change, new = _obj(name="keep"), _obj(name="change"), _obj(name="new")
    gone, foreign = _obj(name="gone", build="removed"), _obj(name="foreign", managed=False, build=None)
    plan = make_plan(
        {"c1": [keep, {**change, "spec": {"a": 2}}, new]},
        {"c1": [_live(keep, serverDefault=True), _live(change), _live(gone), _live(foreign)]},
        sources={"frontend": "builds/web/frontend.yaml"},
    )
    actions = {e.key.name: e.action for e in plan.entries}
    assert actions == {"keep": "unchanged", "change": "update", "new": "create", "gone": "prune"}
    assert plan.summary() == "1 to create, 1 to change, 1 to prune on 1 cluster"
    update = next(e for e in plan.entries if e.action == "update")
    assert "-  a: 1\n+  a: 2\n" in update.diff and update.source == "builds/web/frontend.yaml"
    assert "uid" not in update.diff and "managedFields" not in update.diff and "status" not in update.diff


def test_nothing_to_change():
    obj = _obj()
    plan = make_plan({"c1": [obj]}, {"c1": [_live(obj)]})
    assert plan.changes == () and plan.summary() == "no changes"


def test_revision_annotation_alone_is_not_a_change():
    old = _obj(annotations={"imagefactory.dev/revision": "aaa"})
    new = _obj(annotations={"imagefactory.dev/revision": "bbb"})
    assert make_plan({"c1": [new]}, {"c1": [_live(old)]}).changes == ()


def test_no_prune_when_disabled_or_cluster_unreachable():
    gone = _obj(name="gone")
    assert make_plan({"c1": []}, {"c1": [_live(gone)]}, prune=False).changes == ()
    plan = make_plan({"c1": [], "c2": [_obj()]}, {"c1": [_live(gone)]}, unreachable={"c1": "connection refused"})
    assert [e.key.cluster for e in plan.changes] == ["c2"]
    assert plan.summary() == "1 to create, 0 to change, 0 to prune on 1 cluster; 1 cluster not compared (unreachable)"


def test_secret_values_are_masked_but_changes_are_visible():
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls", "namespace": "ns"},
              "data": {"ca.crt": "c2FtZQ==", "tls.key": "b2xkLXNlY3JldA=="}}
    after = {**before, "data": {"ca.crt": "c2FtZQ==", "tls.key": "bmV3LXNlY3JldA=="}}
    diff = unified_diff(ObjectKey.of("c1", after), before, after)
    assert "b2xk" not in diff and "bmV3" not in diff and "c2FtZQ" not in diff
    assert f"-  tls.key: '{MASK} (before)'" in diff and f"+  tls.key: '{MASK} (after)'" in diff
    assert f"   ca.crt: '{MASK}'\n" in diff


def test_server_dry_run_result_is_what_desired_means():
    obj = _obj()
    dry = {**obj, "spec": {"a": 1, "timeouts": {"pipeline": "1h0m0s"}}}
    live = _live(obj, timeouts={"pipeline": "1h0m0s"})
    plan = make_plan({"c1": [obj]}, {"c1": [live]}, compared={"c1": {ObjectKey.of("c1", obj): dry}})
    assert plan.changes == ()
    live_old = _live(obj, timeouts={"pipeline": "2h0m0s"})
    plan = make_plan({"c1": [obj]}, {"c1": [live_old]}, compared={"c1": {ObjectKey.of("c1", obj): dry}})
    assert [e.action for e in plan.changes] == ["update"] and "1h0m0s" in plan.changes[0].diff


def test_a_superseded_run_is_not_pruned_but_a_removed_builds_run_is():
    new_run = _obj(name="frontend-new")
    old_run, gone = _obj(name="frontend-old"), _obj(name="other-run", build="other")
    plan = make_plan({"c1": [new_run]}, {"c1": [_live(old_run), _live(gone)]})
    assert {(e.action, e.key.name) for e in plan.changes} == {("create", "frontend-new"), ("prune", "other-run")}
