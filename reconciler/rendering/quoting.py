"""How user-supplied values travel into rendered objects without ever becoming structure or code.

Three layers could reinterpret a value on its way into a build container, and each is closed:

1. **YAML** (our templates). Templates are parsed once with placeholder tokens, and the real
   values are set on the parsed object (``templates.py``), so no value is ever part of YAML
   text. Templates still pass every value through :func:`yaml_quote` (the ``q`` filter), which
   makes a JSON string safe for any YAML 1.1 parser; ``tests/test_rendering_injection.py``
   checks that both routes give identical objects for hostile values.
2. **Tekton variable substitution.** Tekton replaces ``$(params.x)`` in one pass, but after it
   it also expands ``$(context.*)``, ``$(workspaces.*)`` and resolves ``$(tasks.*.results.*)``
   *inside already substituted values*. So free text (build-argument values) is sent
   base64-encoded (:func:`encode_build_args`) and decoded inside the step from its ``args``;
   every other value the models let through has no ``$`` (checked here again: a value with a
   ``$`` where none is expected is a :class:`RenderError`, not a surprise at run time).
3. **Kubernetes** expands ``$(VAR)`` and turns ``$$`` into ``$`` in a container's ``command``,
   ``args`` and ``env[].value``. Values placed there directly (Kaniko and BuildKit Jobs, which
   have no Tekton) go through :func:`kube_escape`, the exact inverse of that expansion.

Scripts (``script:`` in Tekton steps, ``sh -c`` elsewhere) never contain a user value: they
read environment variables and their own arguments.
"""

from __future__ import annotations

import base64
import json
import re

from .common import RenderError

# Everything PyYAML accepts as printable, minus the YAML 1.1 line breaks NEL, LS and PS (which
# fold or break even inside a quoted scalar). Anything else is written as an escape.
_NOT_YAML_SAFE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def yaml_quote(value: object) -> str:
    """A YAML flow value that parses back to exactly ``value`` (str, number, bool, None, list, dict).

    JSON is valid YAML flow syntax for these; non-ASCII text stays readable, and characters a
    YAML parser would reject or fold are escaped (``\\uXXXX``, ``\\UXXXXXXXX``).
    """
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if _SURROGATE.search(text):
        raise RenderError("a value is not valid Unicode text (it holds a lone surrogate)")
    return _NOT_YAML_SAFE.sub(_escape, text)


def kube_escape(value: str) -> str:
    """Escape ``$`` so Kubernetes' ``$(VAR)`` expansion in command/args/env gives back ``value``."""
    return value.replace("$", "$$")


def _argument(key: str, value: str) -> str:
    if "\x00" in key or "\x00" in value:
        raise RenderError(f"build argument {key[:64]} contains a NUL character, which no process argument can carry")
    if _SURROGATE.search(value) or _SURROGATE.search(key):
        raise RenderError(f"build argument {key[:64]} is not valid Unicode text")
    return f"{key}={value}"


def encode_build_args(build_args: dict[str, str]) -> list[str]:
    """``KEY=VALUE`` pairs, each base64 (standard alphabet): the form steps decode from ``"$@"``."""
    return [base64.b64encode(_argument(k, v).encode()).decode("ascii") for k, v in build_args.items()]


def plain_build_args(build_args: dict[str, str]) -> list[str]:
    """``KEY=VALUE`` pairs for a container's args outside Tekton (escaped for Kubernetes)."""
    return [kube_escape(_argument(k, v)) for k, v in build_args.items()]


def no_dollar(field: str, value: str | None) -> str | None:
    """Defence in depth for values sent as plain Tekton params: refuse what Tekton could expand.

    The models already exclude ``$`` from images, revisions, paths and names; a git URL may hold
    one (``$`` is legal in a URL path). Percent-encode it as ``%24`` to build such a repository.
    """
    if value is None:
        return None
    if "$" in value:
        raise RenderError(f"{field} contains '$', which Tekton and Kubernetes treat as a variable reference; "
                          "percent-encode it as %24")
    if "\x00" in value:
        raise RenderError(f"{field} contains a NUL character")
    if value.startswith("-"):
        raise RenderError(f"{field} starts with '-', which a tool would read as an option")
    return value
