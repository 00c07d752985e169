"""One YAML document -> one typed object, or problems naming the field and its line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ..models import API_VERSION, KINDS
from ..models.common import _short
from ..source.yamldocs import Document, ParseProblem, format_path, line_of

# Fields whose input must never be echoed in a message (it may be a plain-text secret).
_SECRET_PARTS = frozenset({"credentials"})


@dataclass(frozen=True)
class Checked:
    """The outcome for one document: a model, or the problems that stopped it."""

    index: int
    line: int
    kind: str | None
    name: str | None
    model: BaseModel | None
    lines: dict
    problems: tuple[ParseProblem, ...]


def check_document(doc: Document, expected_kind: str | None) -> Checked:
    data = doc.data
    if not isinstance(data, dict):
        return _bad(doc, None, None, ParseProblem(doc.line, "", f"expected a mapping with apiVersion and kind, got {_type_name(data)}"))
    kind = data.get("kind")
    name = data.get("metadata", {}).get("name") if isinstance(data.get("metadata"), dict) else None
    name = name if isinstance(name, str) else None
    api = data.get("apiVersion")
    if api != API_VERSION:
        got = f"'{_short(str(api))}'" if api is not None else "missing"
        return _bad(doc, kind if isinstance(kind, str) else None, name,
                    ParseProblem(line_of(doc.lines, ("apiVersion",), doc.line), "apiVersion", f"{got}; expected {API_VERSION}"))
    if kind not in KINDS:
        got = f"'{_short(str(kind))}' is not a kind" if kind is not None else "missing"
        return _bad(doc, None, name, ParseProblem(line_of(doc.lines, ("kind",), doc.line), "kind",
                                                  f"{got}; expected one of {', '.join(KINDS)}"))
    if expected_kind and kind != expected_kind:
        return _bad(doc, kind, name, ParseProblem(line_of(doc.lines, ("kind",), doc.line), "kind",
                                                  f"a {kind} does not belong here; files in this folder hold {expected_kind}"))
    try:
        model = KINDS[kind].model_validate(data)
    except ValidationError as exc:
        return _bad(doc, kind, name, *translate(exc, doc))
    return Checked(doc.index, doc.line, kind, model.metadata.name, model, doc.lines, ())


def _bad(doc: Document, kind: str | None, name: str | None, *problems: ParseProblem) -> Checked:
    return Checked(doc.index, doc.line, kind, name, None, doc.lines, tuple(problems))


def translate(exc: ValidationError, doc: Document) -> list[ParseProblem]:
    """Pydantic errors -> one clear problem each, at the field's own line."""
    out: list[ParseProblem] = []
    seen = set()
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"], doc.data)
        message = err["msg"]
        if isinstance(message, str) and message.startswith("Value error, "):
            message = message[len("Value error, "):]
        if message.startswith("@") and "|" in message:
            sub, message = message[1:].split("|", 1)
            loc = loc + _parse_path(sub)
        message = _friendly(err, message, loc)
        key = (loc, message)
        if key in seen:
            continue
        seen.add(key)
        out.append(ParseProblem(line_of(doc.lines, loc, doc.line), format_path(loc), message))
    return out


def _clean_loc(loc: tuple, data: Any) -> tuple:
    """Pydantic's location -> the user's path.

    Drops what pydantic inserts that is not in the file: union-member tags (``aws-iam`` in
    ``spec.auth.aws-iam.roleArn``) and validator markers. A part is kept when it is a key
    or index present in the data at that point.
    """
    out = []
    current = data
    for part in loc:
        if isinstance(current, dict):
            if part in current:
                out.append(part)
                current = current[part]
                continue
            if isinstance(part, str) and (part in current.values() or "[" in part or part.startswith("function-")):
                continue  # a discriminator tag or a marker
            out.append(part)  # a missing or unknown key: still the user's path
            current = None
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            out.append(part)
            current = current[part]
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        else:
            out.append(part)
            current = None
    return tuple(out)


def _parse_path(text: str) -> tuple:
    out: list = []
    for chunk in text.split("."):
        while "[" in chunk:
            head, rest = chunk.split("[", 1)
            if head:
                out.append(head)
            index, chunk = rest.split("]", 1)
            out.append(int(index))
        if chunk:
            out.append(chunk)
    return tuple(out)


def _friendly(err: dict, message: str, loc: tuple) -> str:
    kind = err["type"]
    secret = any(part in _SECRET_PARTS for part in loc)
    value = err.get("input")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see schemas/ for the fields this kind takes)"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and not secret:
        expected = err.get("ctx", {}).get("expected", "")
        options = expected.replace("'", "").replace(" or ", ", ")
        return f"'{_short(str(value))}' is not one of {options}"
    if kind == "union_tag_invalid" and not secret:
        expected = err.get("ctx", {}).get("expected_tags", "").replace("'", "")
        return f"'{_short(str(err.get('ctx', {}).get('tag')))}' is not one of {expected}"
    if kind == "union_tag_not_found":
        return f"required field '{err.get('ctx', {}).get('discriminator', '').strip(chr(39))}' is missing"
    if kind in ("string_type", "bool_type", "int_type", "float_type", "dict_type", "list_type", "model_type",
                "model_attributes_type"):
        want = {"string_type": "text", "bool_type": "true or false", "int_type": "a whole number",
                "float_type": "a number", "dict_type": "a mapping", "list_type": "a list",
                "model_type": "a mapping", "model_attributes_type": "a mapping"}[kind]
        got = _type_name(value)
        if kind == "string_type" and isinstance(value, (int, float, bool)) and not secret:
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            return f"expected text, got {got} {shown}; write \"{shown}\" in quotes"
        if kind in ("int_type", "float_type", "bool_type") and isinstance(value, (int, float)) and not secret:
            return f"expected {want}, got {value}"
        if kind == "bool_type" and isinstance(value, str) and not secret:
            return f"expected true or false, got the text '{_short(value)}'"
        if isinstance(value, str) and not secret:
            return f"expected {want}, got the text '{_short(value)}'"
        return f"expected {want}, got {got}"
    ctx = err.get("ctx", {})
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than") and not secret:
        bound = {"greater_than_equal": "at least", "greater_than": "more than", "less_than_equal": "at most",
                 "less_than": "less than"}[kind]
        limit = ctx.get({"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}[kind])
        return f"must be {bound} {limit}, got {value}"
    if kind in ("too_short", "too_long") and not secret:
        what = "at least" if kind == "too_short" else "at most"
        n = ctx.get("min_length" if kind == "too_short" else "max_length")
        return f"needs {what} {n} item{'s' * (n != 1)}, got {ctx.get('actual_length', len(value) if hasattr(value, '__len__') else '?')}"
    if kind in ("string_too_long", "string_too_short") and not secret:
        return message.replace("String should", "must")
    if kind == "string_pattern_mismatch" and not secret:
        return f"'{_short(str(value))}' does not match the pattern {err.get('ctx', {}).get('pattern', '')}"
    if secret:
        # Keep pydantic's wording but never the input.
        return message
    return message


def _type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "the number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
