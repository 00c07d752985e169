"""Push webhooks from GitHub, GitLab and Gitea: authenticate, parse, decide.

Authentication comes first, over the raw body, before a byte of it is parsed:

- **GitHub**: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>``
  (the legacy SHA-1 ``X-Hub-Signature`` is not accepted), event in ``X-GitHub-Event``;
- **GitLab**: ``X-Gitlab-Token: <secret>`` (GitLab sends the secret itself; compared in
  constant time), event in ``X-Gitlab-Event`` (``Push Hook``);
- **Gitea**: ``X-Gitea-Signature: <hex HMAC-SHA256(secret, body)>``, event in
  ``X-Gitea-Event``. Gitea also sends ``X-GitHub-Event``/``X-Gogs-Event`` for
  compatibility, so it is recognised first.

Outcomes (HTTP status): 202 ``queued`` (a push to the watched branch: a pass is asked for),
202 ``ignored`` (authentic, but another event, another branch, a tag, a branch deletion),
400 malformed (no provider headers, bad JSON, not a push payload), 401 (missing or wrong
signature/token), 413 body too large, 503 shutting down. Every comparison of secrets uses
``hmac.compare_digest``.

The secret comes from ``IMAGE_FACTORY_WEBHOOK_SECRET`` or, better in a cluster, the file
named by ``IMAGE_FACTORY_WEBHOOK_SECRET_FILE`` (re-read when it changes, so a rotated Secret
takes effect without a restart). It is never logged, and never part of an error message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..logging import fields, get_logger

log = get_logger("webhooks")

SECRET_ENV = "IMAGE_FACTORY_WEBHOOK_SECRET"
SECRET_FILE_ENV = "IMAGE_FACTORY_WEBHOOK_SECRET_FILE"
DEFAULT_MAX_BODY = 5 * 1024 * 1024  # push payloads carry at most 20 commits on GitHub; 5 MiB is ample
PROVIDERS = ("github", "gitlab", "gitea")
_ZERO_SHAS = {"0" * 40, "0" * 64}


class WebhookSecret:
    """The shared secret, from a value or a file (re-read when the file's mtime or size change)."""

    def __init__(self, value: str | bytes | None = None, *, path: str | Path | None = None) -> None:
        if (value is None) == (path is None):
            raise ValueError("give exactly one of value or path")
        self.path = Path(path) if path is not None else None
        self._value = value.encode() if isinstance(value, str) else value
        self._stamp: tuple[float, int] | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self.value()  # fail early when the file cannot be read

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebhookSecret | None:
        """The secret the environment names, or None when neither variable is set."""
        env = os.environ if environ is None else environ
        value, path = env.get(SECRET_ENV) or None, env.get(SECRET_FILE_ENV) or None
        if value and path:
            raise UsageError(f"set only one of {SECRET_ENV} and {SECRET_FILE_ENV}")
        if path:
            try:
                return cls(path=path)
            except OSError as exc:
                raise UsageError(f"{SECRET_FILE_ENV}: cannot read {path}: {exc.strerror}") from None
        if value:
            return cls(value.strip())
        return None

    def value(self) -> bytes:
        if self.path is None:
            assert self._value is not None
            return self._value
        with self._lock:
            st = self.path.stat()
            stamp = (st.st_mtime, st.st_size)
            if stamp != self._stamp:
                value = self.path.read_bytes().strip()
                if not value:
                    raise UsageError(f"{SECRET_FILE_ENV}: {self.path} is empty")
                self._value, self._stamp = value, stamp
            assert self._value is not None
            return self._value

    def __repr__(self) -> str:  # never the value
        return f"WebhookSecret({'file ' + str(self.path) if self.path else 'value'}, [REDACTED])"


@dataclasses.dataclass(frozen=True)
class PushEvent:
    """What a push webhook says, the same for every provider."""

    provider: str
    ref: str
    branch: str
    after: str  # the commit the branch now points to
    before: str
    repository: str  # "owner/name" or GitLab's "group/sub/project"
    clone_urls: tuple[str, ...]
    default_branch: str | None
    delivery: str | None
    pusher: str | None

    def as_detail(self) -> dict[str, Any]:
        return {"provider": self.provider, "ref": self.ref, "after": self.after, "repository": self.repository,
                "delivery": self.delivery}


@dataclasses.dataclass(frozen=True)
class WebhookResult:
    status: int
    result: str  # queued | ignored | unauthorized | malformed | too-large | unavailable
    message: str
    provider: str | None = None
    push: PushEvent | None = None

    def body(self) -> bytes:
        data: dict[str, Any] = {"result": self.result, "message": self.message}
        if self.provider:
            data["provider"] = self.provider
        if self.push is not None:
            data["ref"], data["after"] = self.push.ref, self.push.after
        return json.dumps(data).encode() + b"\n"


def sign(secret: str | bytes, body: bytes) -> str:
    """hex HMAC-SHA256 of ``body`` (Gitea's X-Gitea-Signature; GitHub's after ``sha256=``)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def detect_provider(headers: Mapping[str, str]) -> str | None:
    h = _lower(headers)
    if "x-gitea-event" in h:
        return "gitea"
    if "x-gitlab-event" in h:
        return "gitlab"
    if "x-github-event" in h:
        return "github"
    return None


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    items = headers.items() if hasattr(headers, "items") else headers
    return {str(k).lower(): str(v) for k, v in items}


class WebhookReceiver:
    """Turns an HTTP request (headers + raw body) into a :class:`WebhookResult`.

    ``branch``: the branch the loop reconciles; ``None`` means the repository's default branch
    as the payload names it. ``on_push(event)`` is called for each accepted push and returns
    False when no more triggers are taken (shutdown).
    """

    def __init__(self, secret: WebhookSecret, on_push: Callable[[PushEvent], bool], *,
                 branch: str | None = None, max_body: int = DEFAULT_MAX_BODY,
                 on_result: Callable[[WebhookResult], None] | None = None) -> None:
        self.secret = secret
        self.on_push = on_push
        self.branch = branch
        self.max_body = max_body
        self.on_result = on_result

    def handle(self, headers: Mapping[str, str], body: bytes, provider: str | None = None) -> WebhookResult:
        result = self._handle(_lower(headers), body, provider)
        level = 20 if result.status < 300 else 30
        log.log(level, f"webhook {result.result}: {result.message}",
                extra=fields(provider=result.provider, status=result.status,
                             revision=result.push.after if result.push else None))
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _handle(self, h: dict[str, str], body: bytes, forced: str | None) -> WebhookResult:
        provider = forced or detect_provider(h)
        if provider is None:
            return WebhookResult(400, "malformed", "not a GitHub, GitLab or Gitea webhook "
                                 "(no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)")
        if provider not in PROVIDERS:
            return WebhookResult(404, "malformed", f"unknown provider '{provider}'")
        event_header = {"github": "x-github-event", "gitlab": "x-gitlab-event", "gitea": "x-gitea-event"}[provider]
        if event_header not in h:
            return WebhookResult(400, "malformed", f"no {event_header} header", provider)
        if len(body) > self.max_body:
            return WebhookResult(413, "too-large", f"body over {self.max_body} bytes", provider)

        problem = self._authenticate(provider, h, body)
        if problem:
            return WebhookResult(401, "unauthorized", problem, provider)

        event = h[event_header].strip()
        if provider == "gitlab":
            if event != "Push Hook":
                return WebhookResult(202, "ignored", f"event '{event[:40]}' is not a push", provider)
        elif event != "push":
            return WebhookResult(202, "ignored", f"event '{event[:40]}' is not a push", provider)

        try:
            payload = _parse_body(h.get("content-type", ""), body)
        except ValueError as exc:
            return WebhookResult(400, "malformed", str(exc), provider)
        try:
            push = _push_event(provider, payload, h)
        except (KeyError, TypeError, ValueError) as exc:
            return WebhookResult(400, "malformed", f"not a {provider} push payload: {exc}", provider)

        if not push.ref.startswith("refs/heads/"):
            return WebhookResult(202, "ignored", f"{push.ref} is not a branch", provider, push)
        if push.after in _ZERO_SHAS or payload.get("deleted") is True:
            return WebhookResult(202, "ignored", f"branch {push.branch} was deleted", provider, push)
        wanted = self.branch or push.default_branch
        if wanted and push.branch != wanted:
            return WebhookResult(202, "ignored", f"push to {push.branch}; watching {wanted}", provider, push)
        if not self.on_push(push):
            return WebhookResult(503, "unavailable", "shutting down; not taking triggers", provider, push)
        return WebhookResult(202, "queued", f"push to {push.branch} at {push.after[:12]}: pass queued", provider, push)

    def _authenticate(self, provider: str, h: dict[str, str], body: bytes) -> str | None:
        """None when authentic, else why not (without any secret or signature in it)."""
        try:
            secret = self.secret.value()
        except (OSError, UsageError):
            log.error("webhook secret file cannot be read; refusing webhooks")
            return "webhook secret unavailable"
        if provider == "gitlab":
            token = h.get("x-gitlab-token")
            if not token:
                return "missing X-Gitlab-Token"
            return None if hmac.compare_digest(token.encode(), secret) else "bad X-Gitlab-Token"
        if provider == "github":
            header = h.get("x-hub-signature-256")
            if not header:
                return "missing X-Hub-Signature-256"
            algo, _, given = header.strip().partition("=")
            if algo != "sha256" or not given:
                return "X-Hub-Signature-256 is not sha256=<hex>"
        else:
            given = h.get("x-gitea-signature", "").strip()
            if not given:
                return "missing X-Gitea-Signature"
        expected = sign(secret, body)
        return None if hmac.compare_digest(given.lower().encode(), expected.encode()) else "bad signature"


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    media = content_type.split(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        # GitHub's and Gitea's "form" content type: the JSON sits in the ``payload`` field.
        form = urllib.parse.parse_qs(body.decode("utf-8", errors="strict"), strict_parsing=True)
        if "payload" not in form:
            raise ValueError("form body without a payload field")
        text = form["payload"][0]
    else:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("body is not UTF-8") from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON (line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(payload, dict):
        raise ValueError("body is not a JSON object")
    return payload


def _str(payload: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = payload.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"'{key}' is missing or not a string")
    return value


def _sha(value: Any, key: str) -> str:
    if not isinstance(value, str) or len(value) not in (40, 64) or any(c not in "0123456789abcdef" for c in value.lower()):
        raise ValueError(f"'{key}' is not a commit id")
    return value.lower()


def _push_event(provider: str, p: dict[str, Any], h: dict[str, str]) -> PushEvent:
    ref = _str(p, "ref")
    assert ref is not None
    branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
    repo = p.get("repository")
    if not isinstance(repo, dict):
        raise ValueError("'repository' is missing")
    if provider == "gitlab":
        project = p.get("project") if isinstance(p.get("project"), dict) else {}
        # checkout_sha is the commit to check out; null when the branch was deleted.
        after = p.get("checkout_sha") or p.get("after")
        urls = (repo.get("git_http_url"), repo.get("git_ssh_url"), project.get("git_http_url"),
                project.get("git_ssh_url"), repo.get("homepage"), project.get("web_url"))
        name = project.get("path_with_namespace") or repo.get("name") or ""
        default_branch = project.get("default_branch")
        delivery = h.get("x-gitlab-event-uuid")
        pusher = p.get("user_username") or p.get("user_name")
    else:
        after = p.get("after")
        urls = (repo.get("clone_url"), repo.get("ssh_url"), repo.get("html_url"), repo.get("git_url"))
        name = repo.get("full_name") or repo.get("name") or ""
        default_branch = repo.get("default_branch")
        delivery = h.get("x-github-delivery") if provider == "github" else h.get("x-gitea-delivery")
        pusher_obj = p.get("pusher") if isinstance(p.get("pusher"), dict) else {}
        pusher = pusher_obj.get("name") or pusher_obj.get("login") or pusher_obj.get("username")
    before = p.get("before") or "0" * 40
    return PushEvent(
        provider=provider, ref=ref, branch=branch, after=_sha(after, "after"), before=_sha(before, "before"),
        repository=str(name), clone_urls=tuple(u for u in urls if isinstance(u, str) and u),
        default_branch=default_branch if isinstance(default_branch, str) and default_branch else None,
        delivery=delivery, pusher=pusher if isinstance(pusher, str) else None,
    )
