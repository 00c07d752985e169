"""HTTP to one API server: TLS from memory, auth header, QPS limit, timeouts, retries, counters.

Requests and responses are raw JSON (no generated models: listing 500 PipelineRuns must cost
a JSON parse, not 500 model instantiations). Every request goes through ``Transport.request``,
which is where the request counters (``stats``: per method, ``requests``, ``writes`` (a
non-dry-run POST/PUT/PATCH/DELETE), ``retries``) are kept, so tests and benchmarks can see
exactly what a pass sent.

Retries: connection failures, timeouts, 5xx and 429 are retried ``settings.retries`` times
with exponential backoff and jitter (a 429's Retry-After is honoured, capped at
``backoff_max``); then ``ClusterUnavailable`` is raised. A 401 with a refreshable credential (an
exec plugin, an in-cluster token file) refreshes it once and tries again. Other 4xx raise the
matching ``ClusterRejected`` at once.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import ssl
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Protocol
from urllib.parse import urlencode, urlsplit

import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error, MaxRetryError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from ..logging import fields, get_logger
from .errors import ClusterError, ClusterUnavailable, ConnectFailed, error_for_status, scrub
from .settings import ClusterSettings

log = get_logger("cluster")


_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class TokenSource(Protocol):
    """Where a bearer token comes from. ``refresh`` is called after a 401."""

    def token(self) -> str: ...

    def refresh(self) -> bool:  # True when a new token may now be returned
        ...

    def secrets(self) -> tuple[bytes | str, ...]: ...


class StaticToken:
    def __init__(self, token: str) -> None:
        self._token = token.strip()

    def token(self) -> str:
        return self._token

    def refresh(self) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self._token,)


class FileToken:
    """A token file re-read every ``every`` seconds (projected service-account tokens rotate)."""

    def __init__(self, path: str, every: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.every, self._clock = path, every, clock
        self._token: str | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() - self._read_at >= self.every:
                try:
                    with open(self.path, encoding="utf-8") as f:
                        self._token = f.read().strip()
                except OSError as exc:
                    raise ConnectFailed(f"cannot read the token file {self.path}: {exc.strerror}") from None
                self._read_at = self._clock()
            return self._token

    def refresh(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def secrets(self) -> tuple[str, ...]:
        return (self._token,) if self._token else ()


class TokenBucket:
    """client-go's rate limiter: ``burst`` requests at once, then ``qps`` per second."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.qps, self.burst = qps, max(1, burst)
        self._tokens = float(self.burst)
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self) -> float:
        """Take one token, sleeping as needed; returns the seconds waited."""
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.qps if self._tokens < 0 else 0.0
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


@contextmanager
def private_dir(prefix: str = "image-factory-") -> Iterator[str]:
    """A temporary directory only this user can enter (0700), always removed afterwards."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        os.chmod(path, 0o700)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ssl_context(*, ca_pem: bytes | None, insecure: bool = False,
                client_cert: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
    """TLS settings from memory. Python's ``ssl`` loads a client key only from a file: it is
    written to a private directory, loaded, and removed before this returns."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_pem:
        try:
            ctx.load_verify_locations(cadata=ca_pem.decode("ascii", errors="strict"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            raise ConnectFailed("the CA certificate is not valid PEM") from None
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client_cert is not None:
        cert_pem, key_pem = client_cert
        with private_dir() as d:
            cert_path, key_path = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
            for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            try:
                ctx.load_cert_chain(cert_path, key_path)
            except ssl.SSLError:
                raise ConnectFailed("the client certificate and key do not form a valid PEM pair") from None
    return ctx


class Transport:
    """One API server. Thread-safe; shared by all the work of one provider."""

    def __init__(self, server: str, *, settings: ClusterSettings, provider: str | None = None,
                 ca_pem: bytes | None = None, insecure: bool = False, tls_server_name: str | None = None,
                 client_cert: tuple[bytes, bytes] | None = None, token: TokenSource | None = None,
                 basic_auth: tuple[str, str] | None = None, secrets: tuple[bytes | str, ...] = (),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(server)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ConnectFailed(f"server address {server!r} is not an http(s) URL", provider=provider)
        self.server = server.rstrip("/")
        self.provider = provider
        self.settings = settings
        self._token = token
        self._basic = urllib3.util.make_headers(basic_auth=f"{basic_auth[0]}:{basic_auth[1]}")["authorization"] \
            if basic_auth else None
        self._secrets = tuple(secrets) + ((basic_auth[1],) if basic_auth else ())
        self._sleep = sleep
        self.limiter = TokenBucket(settings.qps, settings.burst)
        self.stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        # called after every attempt with (method, path, HTTP status or None, is_write)
        self.listeners: list[Callable[[str, str, int | None, bool], None]] = []
        timeout = urllib3.Timeout(connect=settings.connect_timeout, read=settings.request_timeout)
        pool_args: dict[str, Any] = {"maxsize": max(2, settings.concurrency + 2), "retries": False, "timeout": timeout}
        if parts.scheme == "https":
            pool_args["ssl_context"] = ssl_context(ca_pem=ca_pem, insecure=insecure, client_cert=client_cert)
            if tls_server_name:
                pool_args["server_hostname"] = tls_server_name
            if insecure:
                pool_args["cert_reqs"] = "CERT_NONE"
                pool_args["assert_hostname"] = False
        self._pool = urllib3.PoolManager(**pool_args)
        self._headers = {"Accept": "application/json", "User-Agent": "image-factory-reconciler"}

    # -- public ----------------------------------------------------------------------------

    def secrets(self) -> tuple[bytes | str, ...]:
        extra = self._token.secrets() if self._token is not None else ()
        return self._secrets + tuple(extra)

    def request(self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str = "application/json", timeout: float | None = None,
                ok: tuple[int, ...] = (), what: str | None = None) -> Response:
        """Send one request (with retries); return the 2xx response, or one whose status is in
        ``ok``; raise a ``ClusterError`` otherwise."""
        url = self.server + path + (("?" + urlencode(query, doseq=True)) if query else "")
        data = None
        headers = dict(self._headers)
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        what = what or f"{method} {path}"
        write = method in _WRITES and not (query and query.get("dryRun"))
        attempts = 1 + max(0, self.settings.retries)
        refreshed = False
        last: ClusterError | None = None
        attempt = 0
        while attempt < attempts:
            attempt += 1
            self.limiter.acquire()
            self._auth(headers)
            try:
                raw = self._pool.request(method, url, body=data, headers=headers, preload_content=True,
                                         timeout=self._timeout(timeout), redirect=False)
            except (Urllib3Error, OSError) as exc:
                self._count(method, path, None, write)
                last = self._connection_error(exc, what)
                if isinstance(last, ClusterUnavailable) and attempt < attempts:
                    self._backoff(attempt, None, last)
                    continue
                raise last from None
            self._count(method, path, raw.status, write)
            if 200 <= raw.status < 300 or raw.status in ok:
                return Response(raw.status, raw.headers, raw.data or b"")
            retry_after = _retry_after(raw.headers.get("Retry-After"))
            last = error_for_status(raw.status, raw.data, what=what, provider=self.provider,
                                    secrets=self.secrets(), retry_after=retry_after)
            if raw.status == 401 and not refreshed and self._token is not None and self._token.refresh():
                refreshed = True
                attempt -= 1  # a refreshed credential gets a fresh try
                continue
            if isinstance(last, ClusterUnavailable) and attempt < attempts:
                self._backoff(attempt, retry_after, last)
                continue
            if isinstance(last, ClusterUnavailable) and attempts > 1:
                last.args = (f"{last.args[0]} (after {attempts} attempts)",)
            raise last
        assert last is not None
        raise last

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def stream(self, path: str, *, query: Mapping[str, Any] | None = None, read_timeout: float,
               what: str | None = None, opened: Callable[[Any], None] | None = None) -> Iterator[Any]:
        """A GET whose answer is a stream of JSON documents, one per line (a watch): yields
        each decoded document as it arrives, until the server ends the stream.

        One attempt, no retries: the caller decides how to resume (a watch resumes from the
        last resourceVersion it saw). Failures raise the same ``ClusterError`` types as
        :meth:`request`; a 401 refreshes a refreshable credential first, for the next attempt.
        ``opened(response)`` receives the live response, so another thread can end the stream
        with ``response.shutdown()``."""
        url = self.server + path + (("?" + urlencode(query, doseq=True)) if query else "")
        what = what or f"watch {path}"
        headers = dict(self._headers)
        self.limiter.acquire()
        self._auth(headers)
        timeout = urllib3.Timeout(connect=self.settings.connect_timeout, read=read_timeout)
        try:
            raw = self._pool.request("GET", url, headers=headers, preload_content=False, timeout=timeout,
                                     redirect=False)
        except (Urllib3Error, OSError) as exc:
            self._count("GET", path, None, False)
            raise self._connection_error(exc, what) from None
        self._count("GET", path, raw.status, False)
        try:
            if raw.status != 200:
                body = raw.read()
                if raw.status == 401 and self._token is not None:
                    self._token.refresh()
                raise error_for_status(raw.status, body, what=what, provider=self.provider, secrets=self.secrets(),
                                       retry_after=_retry_after(raw.headers.get("Retry-After")))
            if opened is not None:
                opened(raw)
            try:
                for line in raw:
                    if line.strip():
                        yield json.loads(line)
            except (Urllib3Error, OSError) as exc:
                raise self._connection_error(exc, what) from None
            except ValueError:
                raise ClusterUnavailable(f"{what}: the stream carried something that is not JSON",
                                         provider=self.provider, reason="BadStream") from None
        finally:
            raw.release_conn()

    def close(self) -> None:
        self._pool.clear()

    # -- internals -------------------------------------------------------------------------

    def _auth(self, headers: dict[str, str]) -> None:
        if self._token is not None:
            headers["Authorization"] = "Bearer " + self._token.token()
        elif self._basic:
            headers["Authorization"] = self._basic

    def _timeout(self, timeout: float | None) -> urllib3.Timeout | None:
        if timeout is None:
            return None
        return urllib3.Timeout(connect=min(timeout, self.settings.connect_timeout), read=timeout)

    def _count(self, method: str, path: str, status: int | None, write: bool) -> None:
        with self._stats_lock:
            self.stats[method] += 1
            self.stats["requests"] += 1
            if write:
                self.stats["writes"] += 1
        for listener in self.listeners:
            listener(method, path, status, write)

    def _backoff(self, attempt: int, retry_after: float | None, error: ClusterError) -> None:
        base = self.settings.backoff_base * (2 ** (attempt - 1))
        delay = min(self.settings.backoff_max, base) * (0.5 + random.random() / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.settings.backoff_max))
        with self._stats_lock:
            self.stats["retries"] += 1
        log.info("retrying in %.2fs: %s", delay, error, extra=fields(provider=self.provider))
        self._sleep(delay)

    def _connection_error(self, exc: BaseException, what: str) -> ClusterError:
        reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
        if isinstance(reason, SSLError) or isinstance(reason, ssl.SSLError):
            detail = scrub(str(reason), self.secrets(), 200)
            return ConnectFailed(f"{what}: TLS failed ({detail})", provider=self.provider)
        # (NewConnectionError derives from ConnectTimeoutError in urllib3: test it first)
        if isinstance(reason, (Urllib3Timeout, TimeoutError)) and not isinstance(reason, NewConnectionError):
            return ClusterUnavailable(f"{what}: timed out", provider=self.provider, reason="Timeout")
        detail = _short_reason(reason)
        return ClusterUnavailable(f"{what}: API server unreachable ({detail})", provider=self.provider,
                                  reason="Unreachable")


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Connection reset by peer", "Remote end closed connection", "Network is unreachable",
                   "Temporary failure in name resolution"):
        if marker in text:
            return marker.lower()
    return scrub(type(exc).__name__ + (": " + text if text else ""), limit=160)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

