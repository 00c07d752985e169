"""Parse YAML bytes into plain data plus the line of every field, with libyaml.

libyaml (PyYAML's C parser) produces events; this module composes them itself, in one
pass, because that is where the safety rules live:

- values follow the YAML 1.2 core schema, and a plain (unquoted) scalar that YAML 1.1 reads
  differently (``NO``, ``on``, ``1e3``, ``0777``, ``2024-01-01``...) is an error: the user
  quotes it, so every tool agrees on what the file says;
- duplicate keys are errors (PyYAML would silently keep the last);
- nesting depth and alias expansion are bounded (no stack overflow, no billion laughs);
  the composer recurses once per nested mapping or list, so its depth is the YAML's, at
  most ``MAX_DEPTH``;
- the input must be UTF-8 and at most ``MAX_FILE_BYTES``.

Nothing here knows about kinds or models; that is ``reconciler.validation``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.cyaml import CParser
from yaml.events import AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent

MAX_FILE_BYTES = 1 << 20  # 1 MiB
MAX_DEPTH = 64
MAX_NODES = 100_000  # per document, counting alias expansion

Path = tuple  # of str keys and int indexes


class Lines(Mapping):
    """Path -> line (1-based) of every key and list item of a document; read-only.

    The composer records lines per mapping and list; the dictionary keyed by paths is built
    the first time it is read, which for a file that validates is usually never.
    """

    __slots__ = ("_root", "_records", "_built")

    def __init__(self, root: int, records: list | None, built: dict | None = None) -> None:
        self._root = root
        # path, {key: line} of each mapping and path, [line, ...] of each list, flat, in the
        # order the collections end (so a path written twice, as the children of a duplicate
        # key are, keeps the later line); the root mapping or list comes last
        self._records = records
        self._built = built

    def _dict(self) -> dict:
        built = self._built
        if built is None:
            records = self._records
            if records is None:  # built meanwhile by another thread
                return self._built  # type: ignore[return-value]
            built = {(): self._root}
            pairs = iter(records)
            for path, entries in zip(pairs, pairs):
                if type(entries) is dict:
                    for key, line in entries.items():
                        built[path + (key,)] = line
                else:
                    for index, line in enumerate(entries):
                        built[path + (index,)] = line
            self._built = built
            self._records = None
        return built

    def without(self, key: str) -> Lines:
        """These lines less those of the top-level field ``key`` and everything under it;
        ``self`` when there are none (a quick test while the paths are not built)."""
        records = self._records
        if records is None:
            built = self._built
            if built is None:  # pragma: no cover - only while another thread builds
                built = self._dict()
            if not any(path and path[0] == key for path in built):
                return self
            return Lines(self._root, None, {path: line for path, line in built.items() if not path or path[0] != key})
        if len(records) < 2 or records[-2] != () or type(records[-1]) is not dict or key not in records[-1]:
            return self  # only a root mapping has top-level fields, and then its own record names them
        kept: list = []
        for i in range(0, len(records) - 2, 2):
            if records[i][0] != key:
                kept += (records[i], records[i + 1])
        root = dict(records[-1])
        del root[key]
        kept += ((), root)
        return Lines(self._root, kept)

    def __getitem__(self, path: Path) -> int:
        return self._dict()[path]

    def get(self, path: Path, default: Any = None) -> Any:
        return self._dict().get(path, default)

    def __contains__(self, path: object) -> bool:
        return path in self._dict()

    def __iter__(self) -> Iterator[Path]:
        return iter(self._dict())

    def __len__(self) -> int:
        return len(self._dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Lines):
            return self._dict() == other._dict()
        if isinstance(other, Mapping):
            return self._dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Lines({self._dict()!r})"


@dataclass(frozen=True)
class Document:
    index: int  # position in the file (0-based)
    line: int  # first line (1-based)
    data: Any
    lines: Lines  # Path -> line (1-based) of the key or item; a read-only mapping


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


def line_of(lines: Mapping, path: Path, default: int = 1) -> int:
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
# Plain scalars that start with one of these can only be text in both versions. (The composer
# once took its short path only for these; it still checks the node limit where that one did.)
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


_EXPLICIT = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:int": int,
    "tag:yaml.org,2002:float": float,
}
_SUPPORTED_TAGS = frozenset({"!", *_EXPLICIT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"})
# A plain scalar is text in YAML 1.1 and 1.2 alike, and no merge key, unless it is one of
# these words or starts with a digit, a sign or a dot (every number, timestamp, .inf and
# .nan does); see _resolve_plain, and the test that checks this shortcut against it.
_SPECIAL_WORDS = frozenset(_NULL) | frozenset(_BOOL12) | frozenset(_BOOL11_ONLY) | {"<<"}
_NUMBER_START = frozenset("0123456789+-.")
_MAYBE_NOT_TEXT = _NUMBER_START | {w[0] for w in _SPECIAL_WORDS if w}

_BOMB = f"document expands to more than {MAX_NODES:,} values (an alias bomb?)"
_AS_KEY = "a mapping or list cannot be used as a key"


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
        data = data[3:]
    if "\x00" in text:
        return _fail(text[: text.index("\x00")].count("\n") + 1, "contains a NUL character; this is not a text file")
    if not text or text.isspace():
        return _fail(1, "file is empty; expected a YAML document with apiVersion, kind, metadata and spec")
    # libyaml reads the UTF-8 bytes (the same bytes it would get from encoding ``text``).
    return _Composer(data, text).run()


def _fail(line: int, message: str) -> ParsedFile:
    return ParsedFile((), (ParseProblem(line, "", message),))


class _Composer:
    """Events -> documents, one method per mapping or list (recursion is bounded by MAX_DEPTH).

    Hot loops keep their state in local variables. A scalar that is certainly text (quoted,
    or plain and not a special word or number, untagged, unanchored) takes a short path;
    everything else goes through ``_scalar``. ``nodes`` counts values as aliases expand them;
    ``weight`` is what a collection adds when an alias repeats it.

    The node limit is checked where the composer before these short paths checked it (after
    every value that did not start with a letter of ``_ALWAYS_TEXT_START``, after aliases and
    after collections), so a file over the limit reports the same line as before.
    """

    __slots__ = ("data", "text", "documents", "problems", "records", "anchors", "get")

    def __init__(self, data: bytes, text: str) -> None:
        self.data = data
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
        parser = CParser(self.data)
        try:
            get = self.get = parser.get_event
            get()  # stream start
            documents = self.documents
            index = 0
            while type(event := get()) is DocumentStartEvent:
                doc_line = event.start_mark.line + 1
                records = self.records = []
                self.anchors = {}
                event = get()
                value = self._root(event)
                get()  # document end
                if value is not None:
                    documents.append(Document(index, doc_line, value, Lines(event.start_mark.line + 1, records)))
                index += 1
        finally:
            parser.dispose()

    def _root(self, event: Any) -> Any:
        cls = type(event)
        line = event.start_mark.line + 1
        if cls is ScalarEvent:
            value = self._scalar(event, line, (), False)
        elif cls is AliasEvent:
            self._abort(line, "", f"unknown alias *{event.anchor}")
        else:
            self._check_tag(event.tag, line, ())
            if cls is MappingStartEvent:
                return self._mapping((), 1, 0)[0]
            return self._sequence((), 1, 0)[0]
        return value

    def _mapping(self, path: Path, depth: int, nodes: int) -> tuple[dict, int, int]:
        """The entries after a mapping start, through its end: (mapping, weight, nodes)."""
        get, anchors = self.get, self.anchors
        scalar_event, special, number_start, limit = ScalarEvent, _SPECIAL_WORDS, _NUMBER_START, MAX_NODES
        maybe_not_text = _MAYBE_NOT_TEXT
        container: dict = {}
        lines: dict = {}  # key -> line
        start, inner = nodes, 0  # inner: counted inside child collections (not this one's weight)
        merges = None
        while True:
            # --- the key; "simple" when it is neither a merge key nor a duplicate
            event = get()
            if type(event) is scalar_event:
                key = event.value
                if (not event.tag and not event.anchor and (event.style or (key not in special and key[0] not in number_start))
                        and key not in container):
                    key_line = event.start_mark.line + 1
                    simple = True
                    nodes += 1
                    if nodes > limit and not ((event.style or key[0] in _ALWAYS_TEXT_START) and key != "<<"):
                        self._abort(key_line, "", _BOMB)
                else:
                    key, key_line, merge = self._key(event, path)
                    simple = not merge and key not in container
                    nodes += 1
                    if nodes > limit:
                        self._abort(key_line, "", _BOMB)
            else:
                cls = type(event)
                if cls is MappingEndEvent:
                    break
                if cls is not AliasEvent:  # a mapping or list where a key belongs
                    line = event.start_mark.line + 1
                    if depth >= MAX_DEPTH:
                        self._abort(line, "", f"nesting is deeper than {MAX_DEPTH} levels")
                    self._check_tag(event.tag, line, path)
                    self._abort(line, format_path(path), _AS_KEY)
                key_line = event.start_mark.line + 1
                key, added = self._alias(event, key_line, path)
                if isinstance(key, (dict, list)):
                    self._abort(key_line, format_path(path), _AS_KEY)
                if type(key) is not str:
                    key = str(key).lower() if isinstance(key, bool) else str(key)
                merge = False
                simple = key not in container
                nodes += added
                if nodes > limit:
                    self._abort(key_line, "", _BOMB)
            # --- its value
            event = get()
            if type(event) is scalar_event:
                value = event.value
                if (simple and not event.tag and not event.anchor
                        and (event.style or (value and value[0] not in maybe_not_text) or (value not in special and value[0] not in number_start))):
                    lines[key] = key_line
                    container[key] = value
                    nodes += 1
                    if nodes > limit and not ((event.style or value[0] in _ALWAYS_TEXT_START) and key != "<<"):
                        self._abort(event.start_mark.line + 1, "", _BOMB)
                    continue
                line = event.start_mark.line + 1
                value = self._scalar(event, line, path + (key,), False)
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
                added = 1
            else:
                cls = type(event)
                line = event.start_mark.line + 1
                if cls is AliasEvent:
                    value, added = self._alias(event, line, path)
                else:
                    if depth >= MAX_DEPTH:
                        self._abort(line, "", f"nesting is deeper than {MAX_DEPTH} levels")
                    self._check_tag(event.tag, line, path + (key,))
                    before = nodes
                    if cls is MappingStartEvent:
                        value, added, nodes = self._mapping(path + (key,), depth + 1, nodes)
                    else:
                        value, added, nodes = self._sequence(path + (key,), depth + 1, nodes)
                    inner += nodes - before
                    if event.anchor:
                        anchors[event.anchor] = (value, added)
            if simple:
                lines[key] = key_line
                container[key] = value
            elif merge:
                merged = value if isinstance(value, list) else [value]
                if not all(isinstance(m, dict) for m in merged):
                    self._abort(key_line, format_path(path), "a merge key (<<) needs a mapping or a list of mappings")
                merges = (merges or []) + merged
            else:  # a duplicate
                self._duplicate(path, key, key_line, lines)
                lines[key] = key_line
                container[key] = value
            nodes += added
            if nodes > limit:
                self._abort(line, "", _BOMB)
        if merges:
            for merged in merges:
                for k, v in merged.items():
                    container.setdefault(k, v)
        self.records += (path, lines)
        return container, 1 + nodes - start - inner, nodes

    def _key(self, event: ScalarEvent, path: Path) -> tuple[str, int, bool]:
        """A key that may not be plain text: (key as text, its line, whether it is a merge key)."""
        key_line = event.start_mark.line + 1
        key = self._scalar(event, key_line, path, True)
        if event.anchor:
            self.anchors[event.anchor] = (key, 1)
        if type(key) is not str:
            key = str(key).lower() if isinstance(key, bool) else str(key)
        return key, key_line, key == "<<" and not event.style and event.implicit[0]

    def _sequence(self, path: Path, depth: int, nodes: int) -> tuple[list, int, int]:
        """The items after a sequence start, through its end: (list, weight, nodes)."""
        get, anchors = self.get, self.anchors
        scalar_event, special, number_start, limit = ScalarEvent, _SPECIAL_WORDS, _NUMBER_START, MAX_NODES
        maybe_not_text = _MAYBE_NOT_TEXT
        container: list = []
        lines: list = []  # line of each item
        append, append_line = container.append, lines.append
        start, inner = nodes, 0
        while True:
            event = get()
            if type(event) is scalar_event:
                value = event.value
                if not event.tag and not event.anchor and (event.style or (value and value[0] not in maybe_not_text) or (value not in special and value[0] not in number_start)):
                    append_line(event.start_mark.line + 1)
                    append(value)
                    nodes += 1
                    if nodes > limit and not (event.style or value[0] in _ALWAYS_TEXT_START):
                        self._abort(event.start_mark.line + 1, "", _BOMB)
                    continue
                line = event.start_mark.line + 1
                value = self._scalar(event, line, path + (len(container),), False)
                if event.anchor:
                    anchors[event.anchor] = (value, 1)
                added = 1
            else:
                cls = type(event)
                if cls is SequenceEndEvent:
                    break
                line = event.start_mark.line + 1
                if cls is AliasEvent:
                    value, added = self._alias(event, line, path)
                else:
                    if depth >= MAX_DEPTH:
                        self._abort(line, "", f"nesting is deeper than {MAX_DEPTH} levels")
                    item = path + (len(container),)
                    self._check_tag(event.tag, line, item)
                    before = nodes
                    if cls is MappingStartEvent:
                        value, added, nodes = self._mapping(item, depth + 1, nodes)
                    else:
                        value, added, nodes = self._sequence(item, depth + 1, nodes)
                    inner += nodes - before
                    if event.anchor:
                        anchors[event.anchor] = (value, added)
            append_line(line)
            append(value)
            nodes += added
            if nodes > limit:
                self._abort(line, "", _BOMB)
        self.records += (path, lines)
        return container, 1 + nodes - start - inner, nodes

    def _scalar(self, event: ScalarEvent, line: int, where: Path, is_key: bool) -> Any:
        """The value of a scalar that may not be plain text; ``where`` is the field it is the
        value of (or, for a key, the mapping it is a key of)."""
        text = event.value
        tag = event.tag
        if tag and tag != "!":
            self._check_tag(tag, line, where)
            try:
                return _EXPLICIT[tag](text) if tag in _EXPLICIT else {"true": True, "false": False}[text.lower()]
            except (ValueError, KeyError):
                self._abort(line, format_path(where), f"'{text[:40]}' does not fit its tag {tag}")
        if event.style or not event.implicit[0]:
            return text
        value, complaint = _resolve_plain(text)
        if complaint:
            self.problems.append(ParseProblem(line, format_path(where + (text,) if is_key else where), complaint))
        return value

    def _alias(self, event: AliasEvent, line: int, path: Path) -> tuple[Any, int]:
        found = self.anchors.get(event.anchor)
        if found is None:
            self._abort(line, format_path(path), f"unknown alias *{event.anchor}")
        return found

    def _duplicate(self, path: Path, key: str, key_line: int, lines: dict) -> None:
        self.problems.append(ParseProblem(
            key_line, format_path(path + (key,)),
            f"key '{key}' appears twice (lines {lines.get(key, '?')} and {key_line}); remove one",
        ))

    def _check_tag(self, tag: str | None, line: int, where: Path) -> None:
        if tag is not None and tag not in _SUPPORTED_TAGS:
            self._abort(line, format_path(where), f"YAML tag {tag} is not supported; remove it")

    def _abort(self, line: int, field: str, message: str) -> None:
        self.problems.append(ParseProblem(line, field, message))
        raise _Abort()
