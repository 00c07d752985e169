"""Hostile values: newlines, ': ', '{{ }}', '$(params.x)', YAML anchors, very long strings...

Two halves. The models reject most hostile values in images, repository URLs, revisions,
paths and names; for what they let through (build-argument values are free text, a git URL
may contain '$'), the renderer must be safe: no value becomes YAML structure, and the value a
build tool finally receives is exactly the user's -- after Tekton's substitution passes and
Kubernetes' $(VAR) expansion, both simulated here from their documented rules.
"""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from reconciler.models import BuildRequest
from reconciler.rendering import RenderError, Renderer
from reconciler.rendering.context import build_facts
from reconciler.rendering.quoting import kube_escape, yaml_quote
from reconciler.rendering.tekton import run_values
from reconciler.rendering.templates import TemplateStore
from reconciler.source.loading import Loader

REPO = Path(__file__).parent / "golden" / "rendering" / "repo"
REVISION = "0" * 40

HOSTILE = [
    "line one\nline two",
    "key: value",
    "a: b\nevil: true",
    "{{ 7 * 7 }}",
    "{% if true %}x{% endif %}",
    "$(params.image)",
    "$(params.build-args[*])",
    "$(context.pipelineRun.name)",
    "$(tasks.clone.results.commit)",
    "$(workspaces.source.path)",
    "$(HOME)",
    "$$(HOME)",
    "$$",
    "cost $5",
    "&anchor value",
    "*alias",
    "<<: *merge",
    "--- \n...",
    "- item",
    "[flow, list]",
    "{flow: map}",
    "!!python/object/apply:os.system ['id']",
    "'single' \"double\" `back`",
    "; rm -rf / #",
    "tab\there",
    "nul-free but \x01 control \x7f chars",
    "unicode \u2028 line \u2029 separators \x85 nel",
    "\ufeffbom and \ud7ff edge",
    "emoji \U0001F680 and combining e\u0301",
    "trailing newline\n\n",
    "",
    "x" * 4096,
]


@pytest.fixture(scope="module")
def snap():
    return Loader().load_directory(str(REPO))


def with_spec(entity, **changes):
    data = entity.model.model_dump(mode="json", exclude_none=True)
    data.pop("status", None)
    spec = data["spec"]
    for key, value in changes.items():
        if key.startswith("source."):
            spec["source"][key.split(".", 1)[1]] = value
        else:
            spec[key] = value
    model = BuildRequest.model_validate(data, strict=False)
    return replace(entity, model=model)


def placed(snap, name):
    build = snap.builds[name]
    pool = snap.pools[build.spec.placement.pool]
    return build, pool, snap.providers[pool.spec.provider], snap.factory.model


# -- what the models reject --------------------------------------------------------------------

@pytest.mark.parametrize("field", ["image", "source.revision", "source.contextDir", "source.dockerfile", "pushSecret"])
def test_models_reject_structural_values(snap, field):
    build = snap.builds["storefront"]
    rejected = 0
    for value in HOSTILE:
        if value in ("", "x" * 4096) and field == "source.contextDir":
            continue
        try:
            with_spec(build, **{field: value})
        except ValidationError:
            rejected += 1
    assert rejected >= len(HOSTILE) - 2, field


def test_models_reject_hostile_names_and_build_arg_keys(snap):
    build = snap.builds["storefront"]
    for value in HOSTILE:
        data = build.model.model_dump(mode="json", exclude_none=True)
        data["metadata"]["name"] = value
        with pytest.raises(ValidationError):
            BuildRequest.model_validate(data, strict=False)
        with pytest.raises(ValidationError):
            with_spec(build, buildArgs={value: "v"})


def test_git_urls_are_rejected_by_the_model_or_by_the_renderer(snap):
    build, pool, provider, factory = placed(snap, "storefront")
    for suffix in HOSTILE + ["$(params.git-url)", "a$b"]:
        url = f"https://git.example.com/{suffix}.git"
        try:
            entity = with_spec(build, **{"source.git": url})
        except ValidationError:
            continue
        if "$" in url:
            with pytest.raises(RenderError, match="percent-encode"):
                Renderer().render_build(entity, pool, provider, factory, REVISION)
        else:
            run = Renderer().render_build(entity, pool, provider, factory, REVISION).run
            assert {"name": "git-url", "value": url} in run["spec"]["params"]


# -- the YAML layer --------------------------------------------------------------------------

def test_lone_surrogates_are_refused(snap):
    with pytest.raises(RenderError, match="Unicode"):
        yaml_quote("\ud800")
    with pytest.raises(ValidationError):  # the models already refuse them
        with_spec(snap.builds["storefront"], buildArgs={"K": "\udfff"})
    from reconciler.rendering.quoting import encode_build_args, plain_build_args
    for encode in (encode_build_args, plain_build_args):
        with pytest.raises(RenderError, match="Unicode"):
            encode({"K": "\udfff"})


@pytest.mark.parametrize("value", HOSTILE + ["\x00 nul", {"a: b": ["- c", None, 1.5, True]}])
def test_json_quoting_round_trips_through_yaml(value):
    text = f"key: {yaml_quote(value)}\nother: fixed\n"
    assert yaml.safe_load(text) == {"key": value, "other": "fixed"}
    assert yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) == {"key": value, "other": "fixed"}


@pytest.mark.parametrize("method_build", ["storefront", "checkout", "gateway", "golden-ami", "features", "docs"])
def test_skeleton_route_equals_the_quoted_yaml_route(snap, method_build):
    """Values set on the parsed object == values quoted into the YAML text, for hostile values."""
    build, pool, provider, factory = placed(snap, method_build)
    store = TemplateStore()
    for value in HOSTILE:
        entity = with_spec(build, buildArgs={"HOSTILE": value, "OTHER": "x"})
        facts = build_facts(entity, pool, provider, factory)
        tv = store.get(facts.method)
        shape, values = run_values(tv, facts)
        fast = store.render_run(tv, shape, run_values(tv, facts)[1])
        direct = store.render_run_direct(tv, shape, values)
        assert fast == direct


def test_hostile_build_args_never_change_the_structure(snap):
    build, pool, provider, factory = placed(snap, "storefront")
    benign = Renderer().render_build(with_spec(build, buildArgs={"A": "plain"}), pool, provider, factory, REVISION).run

    def shape(node):
        if isinstance(node, dict):
            return {k: shape(v) for k, v in node.items()}
        if isinstance(node, list):
            return [shape(v) for v in node]
        return type(node).__name__

    for value in HOSTILE:
        run = Renderer().render_build(with_spec(build, buildArgs={"A": value}), pool, provider, factory, REVISION).run
        assert shape(run["spec"]) == shape(benign["spec"])
        args = {p["name"]: p["value"] for p in run["spec"]["params"]}["build-args"]
        assert [base64.b64decode(a).decode() for a in args] == [f"A={value}"]


# -- Tekton and Kubernetes substitution, simulated ---------------------------------------------

_PARAM = re.compile(r"\$\(params\.([A-Za-z0-9_-]+)(\[\*\])?\)")
_LATER = re.compile(r"\$\((context\.[^)]*|tasks\.[^)]*|workspaces\.[^)]*)\)")


def tekton(pipeline: dict, run: dict) -> dict[str, dict]:
    """Step name -> {"args": [...], "env": {...}} after Tekton resolved the run, by its rules:
    one pass of param substitution (a value is never rescanned for params), whole-element
    expansion of array params in args, and then -- on the already substituted text -- the
    context, workspace and task-result passes, which here replace any reference they find."""
    given = {p["name"]: p["value"] for p in run["spec"]["params"]}
    params = {p["name"]: given.get(p["name"], p.get("default")) for p in pipeline["spec"]["params"]}
    steps = {}
    for task in pipeline["spec"]["tasks"]:
        task_params = {}
        for p in task.get("params", ()):
            task_params[p["name"]] = _subst_value(p["value"], params)
        for step in task["taskSpec"]["steps"]:
            args = []
            for arg in step.get("args", ()):
                m = _PARAM.fullmatch(arg)
                if m and m.group(2):
                    args.extend(task_params[m.group(1)])
                else:
                    args.append(_subst(arg, task_params))
            env = {e["name"]: _subst(e.get("value", ""), task_params) for e in step.get("env", ())}
            later = lambda text: _LATER.sub("RESOLVED", text)  # noqa: E731
            steps[step["name"]] = {"args": [later(a) for a in args], "env": {k: later(v) for k, v in env.items()}}
    return steps


def _subst(text: str, params: dict) -> str:
    return _PARAM.sub(lambda m: params[m.group(1)] if isinstance(params.get(m.group(1)), str) else m.group(0), text)


def _subst_value(value, params):
    if isinstance(value, list):
        out = []
        for item in value:
            m = _PARAM.fullmatch(item)
            if m and m.group(2):
                out.extend(params[m.group(1)])
            else:
                out.append(_subst(item, params))
        return out
    return _subst(value, params)


def kubelet(text: str, env: dict[str, str]) -> str:
    """Kubernetes' expansion of command/args/env values: $$ -> $, $(VAR) -> its value if defined."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env.get(name, text[i:end + 1]))
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def decode_in_step(args: list[str]) -> list[str]:
    """What the step script does with its arguments: base64 -d each."""
    return [base64.b64decode(a).decode() for a in args]


@pytest.mark.parametrize("build_name,step", [("storefront", "build-and-push"), ("checkout", "build-and-push"),
                                              ("golden-ami", "build"), ("docs", "prepare")])
def test_build_args_reach_the_tool_exactly(snap, build_name, step):
    build, pool, provider, factory = placed(snap, build_name)
    for value in HOSTILE:
        rendered = Renderer().render_build(with_spec(build, buildArgs={"K": value, "HOME": "$(HOME)"}),
                                           pool, provider, factory, REVISION)
        pipeline = [o for o in rendered.objects if o["kind"] == "Pipeline"][0]
        seen = tekton(pipeline, rendered.run)[step]
        env = {"HOME": "/home/user", "IMAGE": "leaked"}
        args = [kubelet(a, env) for a in seen["args"]]
        assert decode_in_step(args) == [f"K={value}", "HOME=$(HOME)"]


def test_plain_values_other_steps_read_arrive_exactly(snap):
    build, pool, provider, factory = placed(snap, "storefront")
    rendered = Renderer().render_build(build, pool, provider, factory, REVISION)
    pipeline = [o for o in rendered.objects if o["kind"] == "Pipeline"][0]
    steps = tekton(pipeline, rendered.run)
    assert steps["clone"]["env"]["PARAM_URL"] == build.spec.source.git
    assert steps["build-and-push"]["env"]["IMAGE"] == build.spec.image


def test_the_simulation_would_catch_a_plain_transport():
    """Control: a value passed as a plain param is altered by the later passes and the kubelet."""
    pipeline = {"spec": {"params": [{"name": "v", "type": "string"}], "tasks": [{
        "name": "t", "params": [{"name": "v", "value": "$(params.v)"}],
        "taskSpec": {"steps": [{"name": "s", "env": [{"name": "V", "value": "$(params.v)"}]}]}}]}}
    for value, changed in (("$(params.v)", False), ("$(context.pipelineRun.name)", True), ("a$$b", True)):
        run = {"spec": {"params": [{"name": "v", "value": value}]}}
        seen = kubelet(tekton(pipeline, run)["s"]["env"]["V"], {})
        assert (seen != value) is changed, value


def test_kaniko_job_args_survive_kubernetes_expansion(snap):
    build, pool, provider, factory = placed(snap, "base-ubi")
    for value in HOSTILE:
        job = Renderer().render_build(with_spec(build, buildArgs={"K": value}), pool, provider, factory, REVISION).run
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e["value"] for e in container["env"]}
        args = [kubelet(a, env) for a in container["args"]]
        assert f"--build-arg=K={value}" in args
        clone = job["spec"]["template"]["spec"]["initContainers"][0]
        assert kubelet(clone["command"][2], {}).startswith("set -eu\n")


def test_buildkit_job_args_survive_kubernetes_expansion(snap):
    build, pool, provider, factory = placed(snap, "search")
    for value in HOSTILE:
        job = Renderer().render_build(with_spec(build, buildArgs={"K": value}), pool, provider, factory, REVISION).run
        args = [kubelet(a, {"HOME": "/tmp"}) for a in job["spec"]["template"]["spec"]["containers"][0]["args"]]
        assert f"build-arg:K={value}" in args


def test_nul_in_a_build_arg_is_refused(snap):
    build, pool, provider, factory = placed(snap, "storefront")
    with pytest.raises(RenderError, match="NUL"):
        Renderer().render_build(with_spec(build, buildArgs={"K": "a\x00b"}), pool, provider, factory, REVISION)


def test_kube_escape_is_the_inverse_of_expansion():
    for value in HOSTILE:
        assert kubelet(kube_escape(value), {"HOME": "/root", "params.image": "x"}) == value


def test_very_long_values_and_names(snap):
    build, pool, provider, factory = placed(snap, "storefront")
    args = {f"K{i}": "v" * 4096 for i in range(64)}  # the models' limits
    rendered = Renderer().render_build(with_spec(build, buildArgs=args), pool, provider, factory, REVISION)
    assert len(rendered.run["spec"]["params"][-1]["value"]) == 64
    assert len(rendered.run_name) <= 63
