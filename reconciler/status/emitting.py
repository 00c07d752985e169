"""The ``status:`` block as text, quickly: a small emitter for the plain data a status holds.

ruamel.yaml took about 5 ms to emit one build's status (ten alternatives, conditions), so a
pass that changes every status (the first pass of a repository, a template bump) spent 50 s
of 55 s at 10,000 builds in its emitter. This one writes the same bytes as ruamel does for
block mappings and sequences of strings, numbers and booleans, with the project's quoting
rule (``writeback``: plain only when every reader agrees, else double-quoted). Anything
outside that (a list in a list, a control character, a string too long to be sure) makes
``emit_block`` return None, and the caller falls back to ruamel. A test compares both
emitters over generated statuses; every written file is verified by reading it back anyway.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

# Strings that every YAML reader takes as the same plain text. Anything else is quoted.
SAFE_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9_./()+=,-]*( [A-Za-z0-9_./()+=,-]+)*$")
# Plain words that YAML 1.1 or 1.2 reads as booleans or null.
RESERVED = {w.lower() for w in ("y", "n", "yes", "no", "on", "off", "true", "false", "null")}
# What a double-quoted string may hold here besides escaped \ " \n \t: printable text that
# ruamel also writes as it is (no line breaks such as U+0085/U+2028/U+2029, no BOM).
_QUOTABLE = re.compile("^[\t\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}
_TO_ESCAPE = re.compile(r'[\\"\n\t]')
_LONGEST = 4096  # ruamel folds long strings near its width (65,536): stay far below it


class _Unsupported(Exception):
    pass


def float_text(value: float) -> str:
    """A float as YAML 1.1 and 1.2 both read it: always with a ``.`` in the mantissa."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    mantissa, e, exponent = repr(value).partition("e")
    if "." not in mantissa:
        mantissa += ".0"  # 1e-05 is text to YAML 1.1 readers; 1.0e-05 is a float to both
    return mantissa + e + exponent


def emit_block(key: str, value: Any, mapping_indent: int = 2, seq_offset: int = 2) -> str | None:
    """``key:`` and its value as a block at column 0, "\\n" line ends; None when the value
    holds something this emitter leaves to ruamel."""
    lines: list[str] = []
    try:
        _key_value(lines, 0, key, value, mapping_indent, seq_offset, None)
    except _Unsupported:
        return None
    return "".join(lines)


def _key_value(lines: list[str], col: int, key: Any, value: Any, m: int, o: int, first: str | None) -> None:
    """``key: value`` at column ``col``; ``first`` begins the line instead of spaces ("- ")."""
    if not isinstance(key, str):
        raise _Unsupported
    head = (" " * col if first is None else first) + _scalar(key) + ":"
    if isinstance(value, Mapping):
        if not value:
            lines.append(head + " {}\n")
            return
        lines.append(head + "\n")
        _mapping(lines, col + m, value, m, o, None)
    elif isinstance(value, list):
        if not value:
            lines.append(head + " []\n")
            return
        lines.append(head + "\n")
        _sequence(lines, col + o, value, m, o)
    else:
        lines.append(head + " " + _scalar(value) + "\n")


def _mapping(lines: list[str], col: int, mapping: Mapping, m: int, o: int, first: str | None) -> None:
    for key, value in mapping.items():
        _key_value(lines, col, key, value, m, o, first)
        first = None


def _sequence(lines: list[str], dash: int, items: list, m: int, o: int) -> None:
    prefix = " " * dash + "- "
    for item in items:
        if isinstance(item, Mapping):
            if item:
                _mapping(lines, dash + 2, item, m, o, prefix)
            else:
                lines.append(prefix + "{}\n")
        elif isinstance(item, list):
            raise _Unsupported
        else:
            lines.append(prefix + _scalar(item) + "\n")


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, str):
        if len(value) > _LONGEST:
            raise _Unsupported
        if SAFE_PLAIN.match(value) and value.lower() not in RESERVED:
            return value
        if not _QUOTABLE.match(value):
            raise _Unsupported
        return '"' + _TO_ESCAPE.sub(lambda ch: _ESCAPES[ch.group()], value) + '"'
    raise _Unsupported
