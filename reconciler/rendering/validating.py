"""Check rendered custom resources against their CRD's ``openAPIV3Schema`` (structural schemas).

A small validator of the subset Kubernetes uses: types, ``required``, ``properties`` (a field
the schema does not know is reported: the API server would prune it silently),
``additionalProperties``, ``items``, ``enum``, bounds, ``pattern``, ``nullable``,
``x-kubernetes-int-or-string`` and ``x-kubernetes-preserve-unknown-fields``. No dependency.

Tekton leaves embedded specs open (``taskSpec``, ``pipelineSpec``: preserve-unknown-fields);
:func:`embedded_task_schema` gives the Task CRD's own spec schema to check them with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

import yaml

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_crds(folders: Iterable[str | Path]) -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> openAPIV3Schema, for every served version of every CRD found."""
    schemas: dict[tuple[str, str], dict] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.yaml")):
            for doc in yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader):
                if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                for version in spec["versions"]:
                    schema = (version.get("schema") or {}).get("openAPIV3Schema")
                    if schema and version.get("served", True):
                        schemas[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = schema
    return schemas


def embedded_task_schema(task_schema: dict) -> dict:
    """The schema of an embedded task (``PipelineTask.taskSpec``): a TaskSpec plus metadata."""
    spec = dict(task_schema["properties"]["spec"])
    props = dict(spec.get("properties", {}))
    for extra in ("metadata", "apiVersion", "kind", "spec"):
        props.setdefault(extra, {"x-kubernetes-preserve-unknown-fields": True})
    spec["properties"] = props
    return spec


def validate(value: Any, schema: dict, path: str = "") -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: message`` lines (empty when valid)."""
    errors: list[str] = []
    _check(value, schema, path or "$", errors)
    return errors


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return True


def _check(value: Any, schema: dict, path: str, errors: list[str]) -> None:
    if value is None:
        if not schema.get("nullable"):
            errors.append(f"{path}: null is not allowed")
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
            errors.append(f"{path}: expected an integer or a string")
        return
    kind = schema.get("type")
    if kind and not _type_ok(value, kind):
        errors.append(f"{path}: expected {kind}, got {type(value).__name__}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: above {schema['maximum']}")
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _check(item, items, f"{path}[{i}]", errors)
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{path}.{name}: required")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for key, item in value.items():
            where = f"{path}.{key}"
            if path == "$" and key == "metadata":
                continue  # ObjectMeta: validated by the API server itself, not by the CRD
            if props is not None and key in props:
                _check(item, props[key], where, errors)
            elif isinstance(extra, dict):
                _check(item, extra, where, errors)
            elif extra is True or preserve:
                continue
            else:
                # Not in properties (or an object with neither properties nor
                # additionalProperties): the API server would prune it without a word.
                errors.append(f"{where}: unknown field (the API server would prune it)")
