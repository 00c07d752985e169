"""Write a ``status:`` block into a YAML file without touching anything else in it.

``apply_status`` finds the top-level ``status`` key of one document with libyaml's event
marks, and replaces exactly the lines of that key and its value (or appends a new block as
the document's last key, or removes it) with a block emitted for the status mapping alone,
as ruamel.yaml emits it (``emitting`` writes the same bytes faster; ruamel itself for what
that leaves out). Every byte outside those lines (comments, key order, quoting, flow style,
anchors, other documents, CRLF line endings, a missing final newline) is left as it was.
Letting ruamel round-trip the whole file would re-indent and re-wrap the user's text.

The emitted block is deterministic (same status, same bytes) and unambiguous: strings that
YAML 1.1 and 1.2 readers could disagree on (timestamps, ``on``, ``0777``, hex SHAs that look
like numbers...) are double-quoted, and floats always carry a ``.``, so the output loads back
with ``reconciler.source.yamldocs.parse`` with zero problems (checked on every call).

Pure functions on bytes: nothing here touches Git or the file system.
"""

from __future__ import annotations

import io
import math
import re
from typing import Any, Mapping

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from ..source.yamldocs import parse
from .emitting import RESERVED, SAFE_PLAIN, emit_block, float_text

STATUS_KEY = "status"

# libyaml's line breaks (YAML 1.1 set): CRLF, CR, LF, NEL, LS, PS.
_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")


class StatusEditError(ValueError):
    """The file's layout does not allow a status edit (not a mapping, unparseable, ...)."""


# --- public API --------------------------------------------------------------------------


def apply_status(original: bytes, status: Mapping | Any | None, doc_index: int = 0) -> bytes:
    """Replace, add (as the last top-level key) or, when ``status`` is None, remove the
    top-level ``status:`` block of document ``doc_index``; every other byte is kept."""
    text = _decode(original)
    lines = _split_lines(text)
    doc = _locate(text, doc_index)
    status_data = None if status is None else normalize_status(status)
    if doc.flow_root:
        raise StatusEditError(
            f"document {doc_index} is written as a flow mapping ({{...}}); write it in block style to get a status")
    span = doc.status_span
    if status_data is None:
        if span is None:
            return original
        first, last = span
        if not _has_break(lines[last]) and first > 0:
            # The block ended the file without a newline: drop the break before it too,
            # so that adding then removing a status gives back the original bytes.
            lines[first - 1] = _strip_break(lines[first - 1])
        del lines[first:last + 1]
        return _encode("".join(lines), original)
    newline = _newline_of(lines, span[0] if span else doc.last_line)
    mapping_indent, seq_offset = _sniff_style(lines, doc)
    block = render_status_block(status_data, mapping_indent, seq_offset, doc.indent)
    block = block.replace("\n", newline)
    if span is not None:
        first, last = span
        if not _has_break(lines[last]):
            block = block[: -len(newline)]
        lines[first:last + 1] = [block]
    else:
        last = doc.last_line
        # Indented comments right after the last value belong to it: add status below them.
        while last + 1 < len(lines) and re.match(r"^[ \t]+#", lines[last + 1]):
            last += 1
        if not _has_break(lines[last]):
            lines[last] = lines[last] + newline
            block = block[: -len(newline)]
        lines.insert(last + 1, block)
    out = _encode("".join(lines), original)
    _verify(out, original, doc_index, status_data)
    return out


def read_status(data: bytes, doc_index: int = 0) -> dict | None:
    """The ``status`` mapping of a document as plain data (None when absent)."""
    parsed = parse(data)
    if parsed.problems or doc_index >= len(parsed.documents):
        raise StatusEditError("; ".join(p.message for p in parsed.problems) or f"no document {doc_index}")
    root = parsed.documents[doc_index].data
    if not isinstance(root, dict):
        raise StatusEditError(f"document {doc_index} is not a mapping")
    value = root.get(STATUS_KEY)
    return value if isinstance(value, dict) else None


def only_status_changed(before: bytes | None, after: bytes | None) -> bool:
    """True when two versions of a file hold the same documents once ``status`` is set
    aside (a commit that changed only status blocks). Unparseable input is never "only
    status": the caller must look at it."""
    if before is None or after is None:
        return False
    a, b = parse(before), parse(after)
    if a.problems or b.problems or len(a.documents) != len(b.documents):
        return False
    for da, db in zip(a.documents, b.documents):
        if not isinstance(da.data, dict) or not isinstance(db.data, dict):
            if da.data != db.data:
                return False
            continue
        if {k: v for k, v in da.data.items() if k != STATUS_KEY} != {k: v for k, v in db.data.items() if k != STATUS_KEY}:
            return False
    return True


def normalize_status(status: Mapping | Any) -> dict:
    """Plain data for a status: pydantic models dumped, None values dropped (an absent
    optional field and a null one mean the same), tuples made lists."""
    if hasattr(status, "model_dump"):
        status = status.model_dump(mode="json", exclude_none=True)
    if not isinstance(status, Mapping):
        raise StatusEditError(f"status must be a mapping, not {type(status).__name__}")
    return _plain(status)


def render_status_block(status: Mapping, mapping_indent: int = 2, seq_offset: int = 2, root_indent: int = 0) -> str:
    """The ``status:`` block as ruamel.yaml emits it, with "\\n" line ends (see ``emitting``)."""
    plain = normalize_status(status)
    text = emit_block(STATUS_KEY, plain, mapping_indent, seq_offset)
    if text is None:
        text = ruamel_block(plain, mapping_indent, seq_offset)
    if root_indent:
        pad = " " * root_indent
        text = "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))
    return text


# --- emitting ----------------------------------------------------------------------------


def ruamel_block(status: dict, mapping_indent: int = 2, seq_offset: int = 2) -> str:
    """The block as ruamel.yaml emits it: what ``emitting.emit_block`` leaves to it."""
    data = CommentedMap()
    data[STATUS_KEY] = _styled(status)
    out = io.StringIO()
    _yaml(mapping_indent, seq_offset).dump(data, out)
    return out.getvalue()

_YAMLS: dict[tuple[int, int], YAML] = {}


def _yaml(mapping_indent: int, seq_offset: int) -> YAML:
    key = (mapping_indent, seq_offset)
    found = _YAMLS.get(key)
    if found is None:
        found = YAML(typ="rt")
        found.indent(mapping=mapping_indent, sequence=seq_offset + 2, offset=seq_offset)
        found.width = 1 << 16  # never fold a long message over lines
        found.representer.add_representer(float, _represent_float)
        _YAMLS[key] = found
    return found


def _represent_float(representer, value: float):
    return representer.represent_scalar("tag:yaml.org,2002:float", float_text(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "model_dump"):
        return _plain(value.model_dump(mode="json", exclude_none=True))
    if isinstance(value, float) and math.isnan(value):
        raise StatusEditError("cannot write NaN into status")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "isoformat"):  # datetime: RFC 3339 text, as Kubernetes writes it
        return value.isoformat().replace("+00:00", "Z")
    raise StatusEditError(f"cannot write a {type(value).__name__} into status")


def _styled(value: Any) -> Any:
    if isinstance(value, dict):
        out = CommentedMap()
        for k, v in value.items():
            out[_styled(k)] = _styled(v)
        return out
    if isinstance(value, list):
        return CommentedSeq(_styled(v) for v in value)
    if isinstance(value, str):
        if SAFE_PLAIN.match(value) and value.lower() not in RESERVED:
            return value
        return DoubleQuotedScalarString(value)
    return value


# --- locating the status block -----------------------------------------------------------


class _Doc:
    __slots__ = ("indent", "status_span", "last_line", "flow_root", "first_line", "key_lines")

    def __init__(self) -> None:
        self.indent = 0
        self.status_span: tuple[int, int] | None = None
        self.last_line = 0
        self.flow_root = False
        self.first_line = 0
        self.key_lines: list[int] = []


def _locate(text: str, doc_index: int) -> _Doc:
    try:
        events = list(yaml.parse(text, Loader=yaml.CSafeLoader))
    except yaml.YAMLError as exc:
        raise StatusEditError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
    lines = _split_lines(text)
    docs = -1
    i = 0
    while i < len(events):
        if isinstance(events[i], yaml.DocumentStartEvent):
            docs += 1
            if docs == doc_index:
                return _scan_document(events, i + 1, lines)
        i += 1
    raise StatusEditError(f"the file has {docs + 1} document(s); there is no document {doc_index}")


def _scan_document(events: list, i: int, lines: list[str]) -> _Doc:
    doc = _Doc()
    root = events[i]
    if not isinstance(root, yaml.MappingStartEvent):
        raise StatusEditError("the document is not a mapping of apiVersion, kind, metadata, spec")
    if root.flow_style:
        doc.flow_root = True
        return doc
    i += 1
    last_end: tuple[int, int] | None = None
    while not isinstance(events[i], yaml.MappingEndEvent):
        key = events[i]
        key_line = key.start_mark.line
        prefix = lines[key_line][: key.start_mark.column] if key_line < len(lines) else ""
        if prefix.strip():
            raise StatusEditError(f"line {key_line + 1}: only simple top-level keys are supported here")
        if not doc.key_lines:
            doc.indent = key.start_mark.column
        doc.key_lines.append(key_line)
        is_status = isinstance(key, yaml.ScalarEvent) and key.value == STATUS_KEY
        if not isinstance(key, (yaml.ScalarEvent, yaml.AliasEvent)):
            raise StatusEditError(f"line {key_line + 1}: complex mapping keys are not supported")
        i += 1
        # The value: one node, possibly nested; remember where its last content ends.
        depth = 0
        value_end = key.end_mark
        keep = False  # the value ends in a block scalar with "+" chomping: its blank lines are content
        while True:
            ev = events[i]
            if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if ev.flow_style:
                    value_end, keep = ev.end_mark, False
            elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
                if _is_flow_end(ev, lines):
                    value_end, keep = ev.end_mark, False
            else:
                value_end, keep = ev.end_mark, _keeps_trailing_lines(ev, lines)
            i += 1
            if depth == 0:
                break
        end_line = _end_line(value_end, key_line, lines, keep)
        if is_status:
            if doc.status_span is not None:
                raise StatusEditError(f"line {key_line + 1}: status is defined twice")
            doc.status_span = (key_line, end_line)
        last_end = (key_line, end_line)
    doc.last_line = last_end[1] if last_end else root.start_mark.line
    return doc


def _is_flow_end(ev, lines: list[str]) -> bool:
    # A block collection's end event sits at the next token; a flow one right after ] or }.
    col = ev.end_mark.column
    line = ev.end_mark.line
    return col > 0 and line < len(lines) and lines[line][col - 1: col] in ("]", "}")


def _keeps_trailing_lines(ev, lines: list[str]) -> bool:
    if not isinstance(ev, yaml.ScalarEvent) or ev.style not in ("|", ">"):
        return False
    line = lines[ev.start_mark.line] if ev.start_mark.line < len(lines) else ""
    header = re.match(r"[|>][0-9+-]*", line[ev.start_mark.column:])
    return bool(header and "+" in header.group())


def _end_line(mark, key_line: int, lines: list[str], keep: bool = False) -> int:
    line = mark.line if mark.column > 0 else mark.line - 1
    line = max(min(line, len(lines) - 1), key_line)
    while not keep and line > key_line and not lines[line].strip():
        line -= 1  # blank lines after a block scalar separate keys; they are not its content
    return line


# --- style sniffing ----------------------------------------------------------------------


def _sniff_style(lines: list[str], doc: _Doc) -> tuple[int, int]:
    """(mapping indent, sequence dash offset) used by the document's own nested blocks, or
    by the rest of the file when the document has no example of one."""
    lo = min(doc.key_lines) if doc.key_lines else 0
    mapping_indent, seq_offset = _sniff_range(lines, lo, doc.last_line)
    if mapping_indent is None or seq_offset is None:
        whole = _sniff_range(lines, 0, len(lines) - 1)
        mapping_indent = mapping_indent if mapping_indent is not None else whole[0]
        seq_offset = seq_offset if seq_offset is not None else whole[1]
    mapping_indent = mapping_indent if mapping_indent and 2 <= mapping_indent <= 8 else 2
    if seq_offset is None or seq_offset < 0 or seq_offset > mapping_indent:
        seq_offset = mapping_indent
    return mapping_indent, seq_offset


def _sniff_range(lines: list[str], lo: int, hi: int) -> tuple[int | None, int | None]:
    mapping_indent = None
    seq_offset = None
    prev_key_col = None  # column of the previous line that ends with "key:"
    for n in range(lo, min(hi + 1, len(lines))):
        raw = _strip_break(lines[n])
        stripped = raw.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            continue
        col = len(raw) - len(stripped)
        is_item = stripped.startswith("- ") or stripped == "-"
        if prev_key_col is not None and col > prev_key_col:
            if is_item:
                seq_offset = col - prev_key_col if seq_offset is None else seq_offset
            elif mapping_indent is None:
                mapping_indent = col - prev_key_col
        elif prev_key_col is not None and col == prev_key_col and is_item and seq_offset is None:
            seq_offset = 0
        prev_key_col = col if re.search(r":\s*(#.*)?$", stripped) and not is_item else None
        if mapping_indent is not None and seq_offset is not None:
            break
    return mapping_indent, seq_offset


# --- bytes and lines ---------------------------------------------------------------------


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StatusEditError(f"not valid UTF-8 at offset {exc.start}") from None


def _encode(text: str, original: bytes) -> bytes:
    return text.encode("utf-8")


def _split_lines(text: str) -> list[str]:
    """Lines with their breaks, split exactly where libyaml counts a new line."""
    out = []
    pos = 0
    for match in _BREAK.finditer(text):
        out.append(text[pos:match.end()])
        pos = match.end()
    if pos < len(text) or not out:
        out.append(text[pos:])
    return out


def _has_break(line: str) -> bool:
    return bool(line) and line[-1] in "\r\n\x85\u2028\u2029"


def _strip_break(line: str) -> str:
    match = _BREAK.search(line)
    return line[: match.start()] if match and match.end() == len(line) else line


def _newline_of(lines: list[str], near: int) -> str:
    for n in list(range(min(near, len(lines) - 1), -1, -1)) + list(range(near + 1, len(lines))):
        match = _BREAK.search(lines[n])
        if match and match.group() in ("\r\n", "\n", "\r"):
            return match.group()
    return "\n"


def _verify(out: bytes, original: bytes, doc_index: int, status: dict) -> None:
    """The edit must read back as written, change nothing else, and not make a clean
    file unclean."""
    parsed = parse(out)
    before = parse(original)
    if parsed.problems and not before.problems:
        raise StatusEditError("the edited file does not load cleanly: "
                              + "; ".join(f"line {p.line}: {p.message}" for p in parsed.problems[:3]))
    if doc_index >= len(parsed.documents) or not isinstance(parsed.documents[doc_index].data, dict):
        raise StatusEditError("the edited file lost its document")
    if parsed.documents[doc_index].data.get(STATUS_KEY) != status:
        raise StatusEditError("the edited file does not read back the status that was written")
    if not before.problems and len(before.documents) == len(parsed.documents):
        for n, (a, b) in enumerate(zip(before.documents, parsed.documents)):
            if n == doc_index:
                a_data = {k: v for k, v in a.data.items() if k != STATUS_KEY} if isinstance(a.data, dict) else a.data
                b_data = {k: v for k, v in b.data.items() if k != STATUS_KEY}
            else:
                a_data, b_data = a.data, b.data
            if a_data != b_data:
                raise StatusEditError(f"the edit would change document {n} outside its status; nothing was written")
    elif not before.problems:
        raise StatusEditError("the edit would change the number of documents; nothing was written")
