"""Pipeline templates: loading, versions, the sandboxed Jinja environment, compiled skeletons.

Layout of ``pipeline-templates/`` (one folder per build method)::

    <method>/metadata.yaml         name, version, description, params (the Pipeline's contract),
                                   resources.tasks, workspace.size, taskMetadata
    <method>/pipeline.yaml.j2      a tekton.dev/v1 Pipeline
    <method>/pipelinerun.yaml.j2   a tekton.dev/v1 PipelineRun of that Pipeline
    <method>/versions/<x.y.z>/     older versions kept for builds that pin one (spec.templateVersion),
                                   with the same three files

**How a PipelineRun template becomes an object, fast and without injection.** Every value that
differs from build to build is handed to Jinja as an opaque *token* (a private-use Unicode
marker) instead of its text. The template is rendered and parsed once per (method, version,
shape) into a *skeleton*; per build, the skeleton is copied with each token replaced by the
real value -- set on the parsed object, never spliced into YAML. So a value cannot add keys,
anchors or documents whatever it contains, and a build costs a dictionary walk instead of a
YAML parse (about 10,000 builds per second rather than 3,000).

Consequences for template authors (enforced, with clear errors):

- branch only on ``shape.*`` (small facts such as ``shape.pushSecret``) and ``template.*``;
  a user value in ``{% if %}`` or a loop raises;
- output values as they are, through the JSON-quoting filter: ``{{ build.image | q }}``;
  filters that change a value's text (``upper``, slicing, ...) are detected and rejected;
- a token whose value is ``None`` removes its key (or list item) from the object.

Pipelines carry no per-build value at all: they are rendered once per (method, version).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .common import RenderError, digest
from .quoting import yaml_quote

# The project's pipeline-templates/, or another folder of the same layout (an installation
# whose package is not next to it, or an organisation's own templates).
DEFAULT_ROOT = Path(os.environ.get("IMAGE_FACTORY_PIPELINE_TEMPLATES")
                    or Path(__file__).resolve().parent.parent.parent / "pipeline-templates")
_VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
_TOKEN_START, _TOKEN_END = "\ue000", "\ue001"
_TOKEN = re.compile(f"{_TOKEN_START}([0-9]+){_TOKEN_END}")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class TemplateError(RenderError):
    """A template is broken (syntax, a user value used as structure, a missing file)."""


class Token(str):
    """Stands for one build value while a skeleton is rendered. Only output is allowed."""

    def __bool__(self) -> bool:
        raise TemplateError("a template tests a build value in a condition; branch on shape.* instead")

    def __iter__(self):  # type: ignore[override]
        raise TemplateError("a template loops over a build value; pass lists whole with | q")

    def __getitem__(self, key):  # type: ignore[override]
        raise TemplateError("a template changes a build value (indexing or slicing); output it as is")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@dataclass(frozen=True)
class TemplateVersion:
    """One version of one method's templates (files read, not yet rendered)."""

    method: str
    version: str
    metadata: dict
    pipeline_source: str
    run_source: str
    path: str

    @property
    def ref(self) -> str:
        return f"{self.method}@{self.version}"

    @property
    def pipeline_name(self) -> str:
        # One Pipeline per method and version in each team namespace: if-docker-1-0-0.
        return f"if-{self.method}-{self.version.replace('.', '-')}"

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p["name"] for p in self.metadata.get("params", ()))


@dataclass
class _Compiled:
    pipeline: dict  # rendered once (no build values)
    digest: str
    run_template: Any  # jinja Template
    skeletons: dict = field(default_factory=dict)  # shape key -> (skeleton, token paths)


class TemplateStore:
    """Every version of every method's templates under ``root``, compiled lazily and cached."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT
        self._versions: dict[str, dict[str, TemplateVersion]] | None = None
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._env = None
        self._previous: TemplateStore | None = None

    def reuse(self, previous: TemplateStore) -> None:
        """Take ``previous``'s compiled templates where the files are still the same (a
        pass that makes a new store then compiles only what changed on disk)."""
        if previous is not self and previous.root == self.root:
            self._previous, previous._previous = previous, None

    # -- discovery -------------------------------------------------------------------------------

    def methods(self) -> dict[str, dict[str, TemplateVersion]]:
        if self._versions is None:
            self._versions = self._discover()
        return self._versions

    def _discover(self) -> dict[str, dict[str, TemplateVersion]]:
        found: dict[str, dict[str, TemplateVersion]] = {}
        if not self.root.is_dir():
            raise TemplateError(f"no pipeline templates at {self.root}")
        for method_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
            folders = [method_dir]
            versions_dir = method_dir / "versions"
            if versions_dir.is_dir():
                folders += sorted(p for p in versions_dir.iterdir() if p.is_dir())
            for folder in folders:
                if not (folder / "metadata.yaml").exists():
                    continue
                tv = self._read(method_dir.name, folder)
                if tv.version in found.setdefault(tv.method, {}):
                    raise TemplateError(f"{folder}: version {tv.version} of {tv.method} is defined twice")
                found[tv.method][tv.version] = tv
        return found

    @staticmethod
    def _read(method: str, folder: Path) -> TemplateVersion:
        try:
            meta = yaml.load((folder / "metadata.yaml").read_text(encoding="utf-8"), Loader=_Loader) or {}
            pipeline = (folder / "pipeline.yaml.j2").read_text(encoding="utf-8")
            run = (folder / "pipelinerun.yaml.j2").read_text(encoding="utf-8")
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateError(f"{folder}: {exc}") from None
        version = str(meta.get("version", ""))
        if meta.get("name") != method or not _VERSION.match(version):
            raise TemplateError(f"{folder}/metadata.yaml: needs name: {method} and version: X.Y.Z")
        return TemplateVersion(method, version, meta, pipeline, run, str(folder))

    def versions(self, method: str) -> list[str]:
        return sorted(self.methods().get(method, {}), key=_version_key)

    def get(self, method: str, version: str | None = None) -> TemplateVersion:
        """The pinned ``version``, or the newest one."""
        available = self.methods().get(method)
        if not available:
            raise RenderError(f"no pipeline template for method {method}")
        if version is None:
            return available[max(available, key=_version_key)]
        if version not in available:
            raise RenderError(f"spec.templateVersion {version} of the {method} template does not exist "
                              f"(available: {', '.join(self.versions(method))})")
        return available[version]

    # -- rendering -------------------------------------------------------------------------------

    @property
    def env(self):
        if self._env is None:
            from jinja2 import StrictUndefined
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                                                finalize=_finalize)
            env.filters["q"] = _quote_filter
            env.filters["tojson"] = _quote_filter  # Jinja's own HTML-escapes; one quoting rule only
            self._env = env
        return self._env

    def _compile(self, tv: TemplateVersion) -> _Compiled:
        key = (tv.method, tv.version)
        compiled = self._compiled.get(key)
        if compiled is None and self._previous is not None:
            compiled = self._previous._compiled.get(key)
            if compiled is not None and self._previous.methods()[tv.method][tv.version] != tv:
                compiled = None  # the files changed
            if compiled is not None:
                self._compiled[key] = compiled
        if compiled is None:
            template = {"name": tv.method, "version": tv.version, "pipelineName": tv.pipeline_name,
                        "ref": tv.ref}
            try:
                text = self.env.from_string(tv.pipeline_source).render(template=template)
                pipeline = yaml.load(text, Loader=_Loader)
                run_template = self.env.from_string(tv.run_source)
            except TemplateError:
                raise
            except Exception as exc:  # jinja2 / yaml errors: name the file
                raise TemplateError(f"{tv.path}: {type(exc).__name__}: {exc}") from None
            if not isinstance(pipeline, dict) or pipeline.get("kind") != "Pipeline":
                raise TemplateError(f"{tv.path}/pipeline.yaml.j2 does not render a Pipeline")
            _check_params(tv, pipeline)
            compiled = _Compiled(pipeline, digest(pipeline.get("spec")), run_template)
            self._compiled[key] = compiled
        return compiled

    def pipeline(self, tv: TemplateVersion) -> tuple[dict, str]:
        """The rendered Pipeline (shared: copy before changing) and its digest."""
        compiled = self._compile(tv)
        return compiled.pipeline, compiled.digest

    def render_run(self, tv: TemplateVersion, shape: Mapping[str, Any], values: Mapping[str, Mapping[str, Any]]) -> dict:
        """The PipelineRun for one build: ``values`` (build, source, run, placement, ...) filled
        into the skeleton compiled for ``shape``."""
        compiled = self._compile(tv)
        shape_key = tuple(sorted(shape.items()))
        entry = compiled.skeletons.get(shape_key)
        if entry is None:
            entry = self._skeleton(tv, compiled, dict(shape), values)
            compiled.skeletons[shape_key] = entry
        filler, slots = entry
        return filler([values[group][name] for group, name in slots])

    def render_run_direct(self, tv: TemplateVersion, shape: Mapping[str, Any], values: Mapping[str, Mapping[str, Any]]) -> dict:
        """The reference route, for tests: render the template with the real values through the
        JSON-quoting filter and parse the YAML; None values drop their key or item. Slow (a
        YAML parse per build) but independent of the skeleton machinery; both must agree."""
        compiled = self._compile(tv)
        template = {"name": tv.method, "version": tv.version, "pipelineName": tv.pipeline_name, "ref": tv.ref}
        text = compiled.run_template.render(shape=dict(shape), template=template, **values)
        return _drop_none(yaml.load(text, Loader=_Loader))

    def _skeleton(self, tv: TemplateVersion, compiled: _Compiled, shape: dict, values: Mapping[str, Mapping[str, Any]]):
        slots: list[tuple[str, str]] = []
        context: dict[str, Any] = {}
        for group, names in values.items():
            tokens = {}
            for name in names:
                tokens[name] = Token(f"{_TOKEN_START}{len(slots)}{_TOKEN_END}")
                slots.append((group, name))
            context[group] = tokens
        template = {"name": tv.method, "version": tv.version, "pipelineName": tv.pipeline_name, "ref": tv.ref}
        try:
            text = compiled.run_template.render(shape=shape, template=template, **context)
            skeleton = yaml.load(text, Loader=_Loader)
        except TemplateError as exc:
            raise TemplateError(f"{tv.path}/pipelinerun.yaml.j2: {exc}") from None
        except Exception as exc:
            raise TemplateError(f"{tv.path}/pipelinerun.yaml.j2: {type(exc).__name__}: {exc}") from None
        if not isinstance(skeleton, dict) or skeleton.get("kind") != "PipelineRun":
            raise TemplateError(f"{tv.path}/pipelinerun.yaml.j2 does not render a PipelineRun")
        _check_skeleton(skeleton, len(slots), f"{tv.path}/pipelinerun.yaml.j2")
        return compile_filler(skeleton), tuple(slots)


def _quote_filter(value: Any) -> str:
    if isinstance(value, Token):
        return f'"{str.__str__(value)}"'
    return yaml_quote(value)


def _finalize(value: Any) -> Any:
    if isinstance(value, Token):
        raise TemplateError("a build value is written without the JSON-quoting filter: use {{ value | q }}")
    return value


def _check_params(tv: TemplateVersion, pipeline: dict) -> None:
    declared = [p.get("name") for p in (pipeline.get("spec") or {}).get("params", ())]
    if tuple(declared) != tv.param_names:
        raise TemplateError(f"{tv.path}: metadata.yaml params {list(tv.param_names)} differ from the Pipeline's {declared}")


def _check_skeleton(node: Any, count: int, where: str) -> None:
    """Every token must survive intact: as a whole string, or inside a string (concatenation)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and _TOKEN_START in key:
                raise TemplateError(f"{where}: a build value is used as a key")
            _check_skeleton(value, count, where)
    elif isinstance(node, list):
        for item in node:
            _check_skeleton(item, count, where)
    elif isinstance(node, str) and (_TOKEN_START in node or _TOKEN_END in node):
        rest = _TOKEN.sub("", node)
        if _TOKEN_START in rest or _TOKEN_END in rest or any(int(i) >= count for i in _TOKEN.findall(node)):
            raise TemplateError(f"{where}: a filter or expression changes a build value's text; output it as is")


def compile_filler(skeleton: Any):
    """Turn a skeleton into a function ``values -> object``: generated Python that builds the
    object in one expression (the template's constants as literals, build values by index),
    then removes the keys and items whose value is None. Build values are never part of the
    generated code (only their indices are), and the template's own text enters it only
    through ``repr`` of strings, integers and booleans, which is always a plain literal.

    The values are used as given (not copied): callers pass fresh objects per build.
    """
    consts: list[Any] = []
    drops: list[tuple[tuple, int]] = []  # (path, slot) of whole-token positions

    def const(value: Any) -> str:
        # Text, integers, booleans and None as Python literals (repr of these is always a
        # plain literal), anything else from the table.
        if value is None or type(value) in (str, int, bool):
            return repr(value)
        consts.append(value)
        return f"c[{len(consts) - 1}]"

    def gen(node: Any, path: tuple) -> str:
        if isinstance(node, dict):
            items = []
            for key, value in node.items():
                items.append(f"{const(key)}: {gen(value, path + (key,))}")
            return "{" + ", ".join(items) + "}"
        if isinstance(node, list):
            return "[" + ", ".join(gen(item, path + (i,)) for i, item in enumerate(node)) + "]"
        if isinstance(node, str) and _TOKEN_START in node:
            match = _TOKEN.fullmatch(node)
            if match:
                drops.append((path, int(match.group(1))))
                return f"v[{int(match.group(1))}]"
            parts = []
            pos = 0
            for m in _TOKEN.finditer(node):
                if m.start() > pos:
                    parts.append(const(node[pos:m.start()]))
                parts.append(f"text(v[{int(m.group(1))}])")
                pos = m.end()
            if pos < len(node):
                parts.append(const(node[pos:]))
            return "(" + " + ".join(parts) + ")"
        return const(node)

    body = gen(skeleton, ())
    lines = ["def fill(v):", f"    o = {body}"]
    # Remove None values, deepest and last first so list indices stay valid.
    for path, slot in sorted(drops, key=lambda d: (len(d[0]), d[0]), reverse=True):
        target = "o" + "".join(f"[{const(k)}]" for k in path[:-1])
        lines.append(f"    if v[{slot}] is None: del {target}[{const(path[-1])}]")
    lines.append("    return o")
    namespace: dict[str, Any] = {"c": consts, "text": _text}
    exec(compile("\n".join(lines), "<pipelinerun skeleton>", "exec"), namespace)  # noqa: S102 - generated from indices only
    return namespace["fill"]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TemplateError("only text values can be joined with other text in a template")
    return value


def known_methods(store: TemplateStore | None = None) -> Iterable[str]:
    return (store or TemplateStore()).methods().keys()


def _drop_none(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _drop_none(v) for k, v in node.items() if v is not None}
    if isinstance(node, list):
        return [_drop_none(v) for v in node if v is not None]
    return node
