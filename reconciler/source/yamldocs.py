"""Parse YAML bytes into plain data plus the line of every field, with libyaml.

libyaml (PyYAML's C parser) produces events; this module composes them itself, in one
iterative pass, because that is where the safety rules live:

- values follow the YAML 1.2 core schema, and a plain (unquoted) scalar that YAML 1.1 reads
  differently (``NO``, ``on``, ``1e3``, ``0777``, ``2024-01-01``...) is an error: the user
  quotes it, so every tool agrees on what the file says;
- duplicate keys are errors (PyYAML would silently keep the last);
- nesting depth and alias expansion are bounded (no stack overflow, no billion laughs);
- the input must be UTF-8 and at most ``MAX_FILE_BYTES``.

Nothing here knows about kinds or models; that is ``reconciler.validation``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64
MAX_NODES = 100_000  # per document, counting alias expansion

Path = tuple  # of str keys and int indexes


@dataclass(frozen=True)
class Document:
    index: int  # position in the file (0-based)
    line: int  # first line (1-based)
    data: Any
    lines: dict  # Path -> line (1-based) of the key or item


@dataclass(frozen=True)
class ParseProblem:
    line: int
    field: str  # dotted path, or "" for the file/document
    message: str


@dataclass(frozen=True)
class ParsedFile:
    documents: tuple[Document, ...]
    problems: tuple[ParseProblem, ...]


def format_path(path: Path) -> str:
    out = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(("." if out else "") + str(part))
    return "".join(out)


def line_of(lines: dict, path: Path, default: int = 1) -> int:
    """Line of ``path``, or of its nearest recorded ancestor."""
    path = tuple(path)
    while path:
        found = lines.get(path)
        if found is not None:
            return found
        path = path[:-1]
    return lines.get((), default)


# --- scalar resolution -------------------------------------------------------------------

_INT12 = re.compile(r"^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_FLOAT12 = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_INF_NAN = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf, "+.inf": math.inf, "+.Inf": math.inf,
            "+.INF": math.inf, "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
            ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan}
_NULL = {"", "~", "null", "Null", "NULL"}
_BOOL12 = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# YAML 1.1 (PyYAML, go-yaml v2, many CI tools) readings that differ from 1.2.
_BOOL11_ONLY = {"y": True, "Y": True, "yes": True, "Yes": True, "YES": True, "on": True, "On": True, "ON": True,
                "n": False, "N": False, "no": False, "No": False, "NO": False, "off": False, "Off": False, "OFF": False}
_INT11 = re.compile(r"^[-+]?(0b[0-1_]+|0[0-7_]+|(0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)$")
_FLOAT11 = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+][0-9]+)?$|^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*$")
_TIMESTAMP11 = re.compile(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ]|$)")
# Plain scalars that start with one of these can only be text in both versions.
_ALWAYS_TEXT_START = frozenset("abcdeghijklmpqrsuvwxzABCDEGHIJKLMPQRSUVWXZ_/\"'$@`")


def _resolve_plain(text: str) -> tuple[Any, str | None]:
    """Value of a plain scalar under YAML 1.2 core, and a complaint if YAML 1.1 differs."""
    if text and text[0] in _ALWAYS_TEXT_START:
        return text, None
    if text in _NULL:
        return None, None
    if text in _BOOL12:
        return _BOOL12[text], None
    if text in _BOOL11_ONLY:
        meaning = "true" if _BOOL11_ONLY[text] else "false"
        return text, f"unquoted {text} is the boolean {meaning} in YAML 1.1 but text in YAML 1.2; write \"{text}\" in quotes if you mean text, or {meaning}"
    if _INT12.match(text):
        if len(text.lstrip("+-")) > 1 and text.lstrip("+-")[0] == "0" and text.lstrip("+-")[1].isdigit():
            return int(text), f"unquoted {text} is octal in YAML 1.1 but decimal in YAML 1.2; write \"{text}\" in quotes or drop the leading zero"
        if text.startswith("0o"):
            return int(text[2:], 8), f"unquoted {text} is text in YAML 1.1 but a number in YAML 1.2; write \"{text}\" in quotes"
        return int(text, 0) if text.startswith("0x") else int(text), None
    if text in _INF_NAN:
        return _INF_NAN[text], None
    if _FLOAT12.match(text):
        value = float(text)
        if not _FLOAT11.match(text):
            return value, f"unquoted {text} is text in YAML 1.1 but a number in YAML 1.2; write \"{text}\" in quotes if you mean text"
        return value, None
    if _INT11.match(text) or _FLOAT11.match(text):
        return text, f"unquoted {text} is a number in YAML 1.1 but text in YAML 1.2; write \"{text}\" in quotes"
    if _TIMESTAMP11.match(text):
        return text, f"unquoted {text} is a timestamp in YAML 1.1; write \"{text}\" in quotes"
    return text, None


_STR_TAG = "tag:yaml.org,2002:str"
_EXPLICIT = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
}


class _Frame:
    __slots__ = ("container", "path", "key", "key_line", "key_plain", "weight", "anchor", "merges", "line")

    def __init__(self, container, path, anchor, line):
        self.container = container
        self.path = path
        self.key = _NO_KEY
        self.key_line = 0
        self.key_plain = False
        self.weight = 1
        self.anchor = anchor
        self.merges = None
        self.line = line


_NO_KEY = object()


class _Abort(Exception):
    pass


def parse(data: bytes) -> ParsedFile:
    """Parse every document of a file; never raises for bad input."""
    if len(data) > MAX_FILE_BYTES:
        return _fail(1, f"file is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,} (1 MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return _fail(line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save the file as UTF-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\x00" in text:
        return _fail(text[: text.index("\x00")].count("\n") + 1, "contains a NUL character; this is not a text file")
    if not text.strip():
        return _fail(1, "file is empty; expected a YAML document with apiVersion, kind, metadata and spec")
    return _Composer(text).run()


def _fail(line: int, message: str) -> ParsedFile:
    return ParsedFile((), (ParseProblem(line, "", message),))


class _Composer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.documents: list[Document] = []
        self.problems: list[ParseProblem] = []

    def run(self) -> ParsedFile:
        try:
            self._compose()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            last_line = self.text.count("\n") + (0 if self.text.endswith("\n") else 1)
            line = min(mark.line + 1, max(last_line, 1)) if mark else 1
            what = exc.problem or exc.context or "invalid YAML"
            if exc.context and exc.problem:
                what = f"{exc.context}, {exc.problem}"
            self.problems.append(ParseProblem(line, "", f"invalid YAML: {what}"))
            self.documents.clear()
        except yaml.YAMLError as exc:  # reader errors (control characters) and the like
            self.problems.append(ParseProblem(getattr(getattr(exc, "mark", None), "line", 0) + 1, "", f"invalid YAML: {exc}".splitlines()[0]))
            self.documents.clear()
        except _Abort:
            self.documents.clear()
        if not self.documents and not self.problems:
            self.problems.append(ParseProblem(1, "", "file holds no YAML document"))
        return ParsedFile(tuple(self.documents), tuple(self.problems))

    def _compose(self) -> None:
        stack: list[_Frame] = []
        anchors: dict[str, tuple[Any, int]] = {}
        lines: dict = {}
        nodes = 0
        doc_line = 1
        index = 0
        root: list = []
        parser = yaml.CSafeLoader(self.text)
        get_event = parser.get_event
        stream_end = yaml.StreamEndEvent
        try:
            events = iter(get_event, None)
            self._loop(events, stream_end, stack, anchors, lines, nodes, doc_line, index, root)
        finally:
            parser.dispose()

    def _loop(self, events, stream_end, stack, anchors, lines, nodes, doc_line, index, root) -> None:
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        mapping_start, sequence_start = yaml.MappingStartEvent, yaml.SequenceStartEvent
        mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
        always_text, no_key = _ALWAYS_TEXT_START, _NO_KEY
        for event in events:
            cls = type(event)
            if cls is stream_end:
                return
            if cls is scalar_event:
                # Fast path for the common case: untagged, unanchored text that cannot be
                # anything but text (quoted, or plain starting with a letter that no other
                # type starts with), going into a mapping or list.
                if stack and not event.tag and not event.anchor:
                    text = event.value
                    if event.style or (text and text[0] in always_text):
                        frame = stack[-1]
                        container = frame.container
                        if type(container) is list:
                            lines[frame.path + (len(container),)] = event.start_mark.line + 1
                            container.append(text)
                            frame.weight += 1
                            nodes += 1
                            continue
                        key = frame.key
                        if key is no_key:
                            if text not in container and text != "<<":
                                frame.key = text
                                frame.key_line = event.start_mark.line + 1
                                frame.weight += 1
                                nodes += 1
                                continue
                        elif key != "<<" and key not in container:
                            lines[frame.path + (key,)] = frame.key_line
                            container[key] = text
                            frame.key = no_key
                            frame.weight += 1
                            nodes += 1
                            continue
                line = event.start_mark.line + 1
                value, weight = self._scalar(event, stack, line), 1
            elif cls is alias_event:
                line = event.start_mark.line + 1
                if event.anchor not in anchors:
                    self._abort(line, format_path(stack[-1].path) if stack else "", f"unknown alias *{event.anchor}")
                value, weight = anchors[event.anchor]
            elif cls is mapping_start or cls is sequence_start:
                line = event.start_mark.line + 1
                if len(stack) >= MAX_DEPTH:
                    self._abort(line, "", f"nesting is deeper than {MAX_DEPTH} levels")
                self._check_tag(event, line, stack)
                path = self._child_path(stack, line, lines) if stack else ()
                if not stack:
                    lines[()] = line
                stack.append(_Frame({} if cls is mapping_start else [], path, event.anchor, line))
                continue
            elif cls is mapping_end or cls is sequence_end:
                frame = stack.pop()
                if frame.merges:
                    for merged in frame.merges:
                        for k, v in merged.items():
                            frame.container.setdefault(k, v)
                value, weight, line = frame.container, frame.weight, frame.line
                if frame.anchor:
                    anchors[frame.anchor] = (value, weight)
                if not stack:
                    root.append(value)
                    continue
                self._attach(stack[-1], value, weight, line, lines)
                nodes += weight
                if nodes > MAX_NODES:
                    self._abort(line, "", f"document expands to more than {MAX_NODES:,} values (an alias bomb?)")
                continue
            elif cls is yaml.DocumentStartEvent:
                doc_line = event.start_mark.line + 1
                lines, anchors, nodes, root = {}, {}, 0, []
                continue
            elif cls is yaml.DocumentEndEvent:
                if root and root[0] is not None:
                    self.documents.append(Document(index, doc_line, root[0], lines))
                index += 1
                continue
            else:  # stream start/end
                continue
            # a scalar or alias value
            if cls is scalar_event and event.anchor:
                anchors[event.anchor] = (value, 1)
            if not stack:
                lines[()] = line
                root.append(value)
                continue
            self._attach(stack[-1], value, weight, line, lines,
                         cls is scalar_event and not event.style and event.implicit[0])
            nodes += weight
            if nodes > MAX_NODES:
                self._abort(line, "", f"document expands to more than {MAX_NODES:,} values (an alias bomb?)")

    def _child_path(self, stack: list[_Frame], line: int, lines: dict) -> Path:
        parent = stack[-1]
        if isinstance(parent.container, list):
            return parent.path + (len(parent.container),)
        if parent.key is _NO_KEY:
            self._abort(line, format_path(parent.path), "a mapping or list cannot be used as a key")
        return parent.path + (parent.key,)

    def _attach(self, frame: _Frame, value: Any, weight: int, line: int, lines: dict, plain: bool = False) -> None:
        frame.weight += weight
        container = frame.container
        if isinstance(container, list):
            lines[frame.path + (len(container),)] = line
            container.append(value)
            return
        if frame.key is _NO_KEY:
            if isinstance(value, (dict, list)):
                self._abort(line, format_path(frame.path), "a mapping or list cannot be used as a key")
            # Keys are text from here on (the fast paths compare them with text keys).
            if not isinstance(value, str):
                value = str(value).lower() if isinstance(value, bool) else str(value)
            frame.key, frame.key_line, frame.key_plain = value, line, plain
            return
        key, key_line = frame.key, frame.key_line
        frame.key = _NO_KEY
        if key == "<<" and frame.key_plain:
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                self._abort(key_line, format_path(frame.path), "a merge key (<<) needs a mapping or a list of mappings")
            frame.merges = (frame.merges or []) + merged
            return
        if key in container:
            self.problems.append(ParseProblem(
                key_line, format_path(frame.path + (key,)),
                f"key '{key}' appears twice (lines {lines.get(frame.path + (key,), '?')} and {key_line}); remove one",
            ))
        lines[frame.path + (key,)] = key_line
        container[key] = value

    def _scalar(self, event: yaml.ScalarEvent, stack: list[_Frame], line: int) -> Any:
        text = event.value
        is_key = bool(stack) and isinstance(stack[-1].container, dict) and stack[-1].key is _NO_KEY
        plain = not event.style and event.implicit[0]
        tag = event.tag
        if tag and tag != "!":
            self._check_tag(event, line, stack)
            try:
                return _EXPLICIT[tag](text) if tag in _EXPLICIT else {"true": True, "false": False}[text.lower()]
            except (ValueError, KeyError):
                self._abort(line, self._where(stack), f"'{text[:40]}' does not fit its tag {tag}")
        if not plain:
            return text
        value, complaint = _resolve_plain(text)
        if complaint:
            where = self._where(stack) if not is_key else format_path(stack[-1].path + (text,))
            self.problems.append(ParseProblem(line, where, complaint))
        return value

    def _check_tag(self, event: Any, line: int, stack: list[_Frame]) -> None:
        tag = getattr(event, "tag", None)
        if tag in (None, "!") or tag in _EXPLICIT or tag == "tag:yaml.org,2002:bool":
            return
        if tag in ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"):
            return
        self._abort(line, self._where(stack), f"YAML tag {tag} is not supported; remove it")

    @staticmethod
    def _where(stack: list[_Frame]) -> str:
        if not stack:
            return ""
        frame = stack[-1]
        if isinstance(frame.container, list):
            return format_path(frame.path + (len(frame.container),))
        if frame.key is _NO_KEY:
            return format_path(frame.path)
        return format_path(frame.path + (frame.key,))

    def _abort(self, line: int, field: str, message: str) -> None:
        self.problems.append(ParseProblem(line, field, message))
        raise _Abort()
