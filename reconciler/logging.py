"""Structured logs: one line per event, as text for people or JSON for log pipelines.

Every record may carry the fields operators filter on: ``build``, ``provider``, ``pool``,
``revision``, ``trigger``, ``pass`` (and any other keyword given through :func:`fields` or
:func:`log_context`). Output goes through *redactors* (``str -> str`` callables) after it is
formatted, so a credential that slipped into a message, a field or a traceback is masked
before it reaches the stream. :func:`redact_values` makes a redactor for known secret values
(the webhook secret, tokens read from files); :func:`redact_url_credentials` masks the
user-info part of URLs (``https://user:token@host``). ``reconciler.sealing`` may add its own.

Use::

    from reconciler.logging import get_logger, fields, log_context, setup
    setup(fmt="json", redactors=[redact_values(secret)])
    log = get_logger("loop")
    with log_context(revision=sha):
        log.info("applied", extra=fields(build="web/frontend", provider="eks-prod"))

Nothing here imports anything beyond the standard library.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import IO, Any

ROOT = "image-factory"
#: logger trees that :func:`setup` formats: ours, and modules that use ``logging.getLogger(__name__)``
ROOTS = (ROOT, "reconciler")
#: fields every formatter prints first, in this order, when a record carries them
KNOWN_FIELDS: tuple[str, ...] = ("build", "provider", "pool", "revision", "trigger", "pass")
Redactor = Callable[[str], str]

_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime",
                                                                                           "taskName"}
_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("image_factory_log_context", default={})
_redactors: list[Redactor] = []
_redactors_lock = threading.Lock()


def get_logger(name: str = "") -> logging.Logger:
    """A logger below the ``image-factory`` root (``get_logger("loop")`` -> ``image-factory.loop``)."""
    return logging.getLogger(f"{ROOT}.{name}" if name else ROOT)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: ``log.info("applied", extra=fields(build="web/x", revision=sha))``.

    ``None`` values are left out. Keys that clash with LogRecord attributes get a ``_`` suffix.
    """
    return {(k if k not in _STANDARD_ATTRS else f"{k}_"): v for k, v in values.items() if v is not None}


@contextlib.contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Add fields to every record logged in this scope (this thread / task only)."""
    token = _context.set({**_context.get(), **{k: v for k, v in values.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


# -- redaction ------------------------------------------------------------------------------------

def add_redactor(redactor: Redactor) -> None:
    """Register a redactor for every handler set up by :func:`setup` (process-wide)."""
    with _redactors_lock:
        if redactor not in _redactors:
            _redactors.append(redactor)


def remove_redactor(redactor: Redactor) -> None:
    with _redactors_lock:
        if redactor in _redactors:
            _redactors.remove(redactor)


def redact(text: str, extra: Iterable[Redactor] = ()) -> str:
    """Apply the registered redactors (and ``extra``) to ``text``."""
    with _redactors_lock:
        chain = [*_redactors, *extra]
    for redactor in chain:
        try:
            text = redactor(text)
        except Exception:  # noqa: BLE001 - a broken redactor must not lose the record; fail closed
            return "[log record withheld: a redactor failed]"
    return text


def redact_values(*secrets: str | bytes | None, mask: str = "[REDACTED]") -> Redactor:
    """A redactor replacing each of these exact values (empty and very short ones are ignored:
    masking every ``a`` in a log would hide everything and protect nothing)."""
    values = sorted({(s.decode(errors="replace") if isinstance(s, bytes) else s).strip()
                     for s in secrets if s}, key=len, reverse=True)
    values = [v for v in values if len(v) >= 4]
    if not values:
        return lambda text: text
    pattern = re.compile("|".join(re.escape(v) for v in values))
    return lambda text: pattern.sub(mask, text)


_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@:]*(?::[^/\s@]*)?)@")
_BEARER = re.compile(r"(?i)\b(bearer|token|basic)(\s+|=|:\s*)([A-Za-z0-9._~+/=-]{8,})")


def redact_url_credentials(text: str) -> str:
    """``https://user:token@host/x`` -> ``https://***@host/x``; ``Bearer abc...`` -> ``Bearer ***``."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


# -- formatters -----------------------------------------------------------------------------------

def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = dict(_context.get())
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            out[key] = value
    ordered = {k: out.pop(k) for k in KNOWN_FIELDS if k in out}
    ordered.update(sorted(out.items()))
    return ordered


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    """``2024-05-01T10:00:00.123Z INFO  loop: pass finished build=web/x revision=abc123``"""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        name = record.name.removeprefix(ROOT).lstrip(".") or ROOT if record.name.startswith(ROOT) else record.name
        line = f"{ts.strftime('%Y-%m-%dT%H:%M:%S')}.{int(record.msecs):03d}Z {record.levelname:<5} {name}: {record.getMessage()}"
        extra = _record_fields(record)
        if extra:
            line += " " + " ".join(f"{k}={_plain(v)}" for k, v in extra.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, the fields, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        data: dict[str, Any] = {
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _record_fields(record).items():
            data.setdefault(key, value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        # Redact the serialized line: a secret inside any value is masked wherever it sits.
        return redact(json.dumps(data, default=str, ensure_ascii=False))


_handler: logging.Handler | None = None


def setup(fmt: str = "text", level: str | int = "info", stream: IO[str] | None = None,
          redactors: Iterable[Redactor] = ()) -> logging.Logger:
    """Configure the ``image-factory`` logger tree (idempotent: a second call replaces the handler).

    ``fmt`` is ``text`` or ``json``; ``redactors`` are added to the process-wide list, which
    always starts with :func:`redact_url_credentials`.
    """
    global _handler
    if fmt not in ("text", "json"):
        raise ValueError(f"log format '{fmt}' is not one of text, json")
    add_redactor(redact_url_credentials)
    for redactor in redactors:
        add_redactor(redactor)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in ROOTS:
        tree = logging.getLogger(name)
        if _handler is not None:
            tree.removeHandler(_handler)
        tree.addHandler(handler)
        tree.setLevel(level.upper() if isinstance(level, str) else level)
        tree.propagate = False
    _handler = handler
    return logging.getLogger(ROOT)


def reset() -> None:
    """Undo :func:`setup`: remove its handler, let records propagate again (tests, embedding)."""
    global _handler
    for name in ROOTS:
        tree = logging.getLogger(name)
        if _handler is not None:
            tree.removeHandler(_handler)
        tree.setLevel(logging.NOTSET)
        tree.propagate = True
    _handler = None
