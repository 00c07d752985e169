"""Errors of the cluster layer, and the scrubbing every message goes through.

Two families, as ``reconciler.errors`` splits them:

- ``ClusterUnavailable`` (transient): the API could not be reached, timed out, answered 5xx, or
  429 (with ``retry_after`` from its Retry-After header). Requests retry these with backoff
  before raising them; loops retry again on their next pass.
- ``ClusterRejected`` (terminal) and its subclasses by HTTP status (401 ``Unauthorized``, 403
  ``Forbidden``, 404 ``NotFound``, 409 ``Conflict``, 400/422 ``Invalid``): retrying cannot help,
  the object or the credentials must change. ``ConnectFailed`` is the terminal error of building
  a connection (bad auth settings, a credential that cannot be opened, an exec plugin that
  fails).

Messages are built from names and reasons, never from credential values. API error bodies and
plugin output are truncated (``MAX_DETAIL``) and scrubbed (``scrub``) of bearer tokens, PEM
keys, JWTs and any secret value the connection knows, before they go into a message.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from ..errors import FactoryError, TerminalError, TransientError

MAX_DETAIL = 400  # characters of an API error message or plugin stderr kept in a message

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [redacted]"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), "[redacted key]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), "[redacted]"),  # a JWT
    (re.compile(r"k8s-aws-v1\.[A-Za-z0-9_-]+"), "[redacted]"),  # an EKS presigned token
    (re.compile(r'(?i)("?(?:token|password|secret|client-?key-?data|clientKeyData)"?\s*[:=]\s*)"?[^",\s}]+"?'),
     r"\1[redacted]"),
)


def scrub(text: str, secrets: Iterable[bytes | str] = (), limit: int = MAX_DETAIL) -> str:
    """``text`` without anything that looks like a credential, cut to ``limit`` characters."""
    for secret in secrets:
        value = secret.decode(errors="replace") if isinstance(secret, bytes) else secret
        value = value.strip()
        if len(value) >= 6:
            text = text.replace(value, "[redacted]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit] + f"... ({len(text) - limit} more characters)"
    return text


class ClusterError(FactoryError):
    """A request to a cluster, or building a connection to it, failed."""

    def __init__(self, message: str, *, provider: str | None = None, status: int | None = None,
                 reason: str | None = None, retry_after: float | None = None,
                 causes: tuple[dict[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.reason = reason
        self.retry_after = retry_after
        self.causes = causes

    def __str__(self) -> str:
        text = super().__str__()
        return f"{self.provider}: {text}" if self.provider else text


class ClusterUnavailable(ClusterError, TransientError):
    """Unreachable, timed out, 5xx or 429: worth retrying later."""


class ClusterRejected(ClusterError, TerminalError):
    """The API server refused the request; retrying the same request cannot help."""


class Unauthorized(ClusterRejected):
    """401: the credentials were not accepted."""


class Forbidden(ClusterRejected):
    """403: authenticated, but RBAC does not allow it."""


class NotFound(ClusterRejected):
    """404: no such object, namespace or resource type."""


class Conflict(ClusterRejected):
    """409: a field-manager conflict (server-side apply) or a precondition failed."""


class Invalid(ClusterRejected):
    """400/422: the object does not validate."""


class Expired(ClusterRejected):
    """410 Gone: the resourceVersion asked for is older than the server keeps (a watch that
    fell behind, or one started before an API server restart): list again."""


class ConnectFailed(ClusterError, TerminalError):
    """A connection could not be built: auth settings, credentials, or an exec plugin."""


class ConnectUnavailable(ClusterError, TransientError):
    """A connection could not be built for a reason that may pass (an exec plugin timed out)."""


_BY_STATUS: dict[int, type[ClusterRejected]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
                                               410: Expired, 400: Invalid, 422: Invalid}

TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def status_message(body: bytes | str | None) -> tuple[str, str | None, tuple[dict[str, str], ...], dict[str, Any]]:
    """(message, reason, causes, details) of a Kubernetes ``Status`` body, or of raw text."""
    if not body:
        return "", None, (), {}
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    try:
        status = json.loads(text)
    except ValueError:
        return text, None, (), {}
    if not isinstance(status, dict):
        return text, None, (), {}
    details = status.get("details") if isinstance(status.get("details"), dict) else {}
    causes = tuple({k: str(v) for k, v in c.items()} for c in details.get("causes") or () if isinstance(c, dict))
    return str(status.get("message") or ""), status.get("reason"), causes, details


def error_for_status(status: int, body: bytes | None, *, what: str, provider: str | None,
                     secrets: Iterable[bytes | str] = (), retry_after: float | None = None) -> ClusterError:
    """The error for an HTTP failure ``status`` of request ``what`` (e.g. "PATCH pipelineruns/x")."""
    message, reason, causes, _ = status_message(body)
    secrets = tuple(secrets)
    detail = scrub(message, secrets) if message else ""
    clean_causes = tuple({k: scrub(v, secrets, 200) for k, v in c.items()} for c in causes[:20])
    text = f"{what}: HTTP {status}" + (f" {reason}" if reason else "") + (f": {detail}" if detail else "")
    if status in TRANSIENT_STATUSES:
        if status == 429 and retry_after is not None:
            text += f" (retry after {retry_after:g}s)"
        return ClusterUnavailable(text, provider=provider, status=status, reason=reason, retry_after=retry_after,
                                  causes=clean_causes)
    cls = _BY_STATUS.get(status, ClusterRejected)
    return cls(text, provider=provider, status=status, reason=reason, causes=clean_causes)
