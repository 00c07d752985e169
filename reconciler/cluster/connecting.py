"""A connection to a Provider's cluster, for each of its auth methods.

``connect(name, spec, credentials, settings)`` turns a Provider's ``spec`` (``endpoint``,
``auth``, ``credentials``) into a ``Connection``. Secrets come from ``credentials``, a callable
the caller supplies: field name (``token``, ``caCert``, ``clientCert``, ``clientKey``,
``clientSecret``, ``kubeconfig``) -> plaintext bytes, or None. It is asked only for the fields
the method uses; ``sealed_credentials`` adapts a sealing keyring (answering None for a field
the Provider does not declare).
Plaintext stays in memory, with two short-lived exceptions, each in a private directory (0700)
removed straight away: a client key while Python's ``ssl`` loads it, and a sealed kubeconfig
while an exec plugin that reads ``KUBECONFIG`` runs.

| method | server | credential |
|---|---|---|
| kubeconfig | the context's cluster | whatever the context's user has (token, cert, exec, ...) |
| in-cluster | ``KUBERNETES_SERVICE_HOST``/``PORT`` | the pod's service-account token file (re-read each minute) + ca.crt |
| service-account-token, api-token, openshift-oauth | ``spec.endpoint`` | ``credentials.token`` (+ ``caCert``) |
| certificate | ``spec.endpoint`` | ``credentials.clientCert`` + ``clientKey`` (+ ``caCert``) |
| aws-iam, gcp-workload-identity, azure-managed-identity, oci-instance-principal | ``spec.endpoint`` | exec plugin (see ``exec_plugins``) (+ ``caCert``) |

Without ``caCert`` the system's trust store verifies the server (cloud endpoints have public
CAs or the caller supplies one).
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import FactoryError
from ..logging import add_redactor, remove_redactor
from .errors import ClusterError, ConnectFailed
from .exec_plugins import ExecRunner, ExecToken, azure_with_secret, cloud_plugin
from .kubeconfigs import KubeconfigTarget, load_kubeconfig
from .resources import Discovery, ResourceType
from .settings import DEFAULT_SETTINGS, ClusterSettings
from .transport import FileToken, Response, StaticToken, TokenSource, Transport

Credentials = Callable[[str], "bytes | None"]
IN_CLUSTER_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
EXEC_METHODS = ("aws-iam", "gcp-workload-identity", "azure-managed-identity", "oci-instance-principal")
TOKEN_METHODS = ("service-account-token", "api-token", "openshift-oauth")


def no_credentials(field: str) -> bytes | None:
    return None


def sealed_credentials(keyring: Any, provider: str, spec: Any) -> Credentials:
    """Adapt a sealing keyring (``open(provider, field, sealed) -> bytes``) to ``Credentials``."""
    def get(field: str) -> bytes | None:
        sealed = (getattr(spec, "credentials", None) or {}).get(field)
        return None if sealed is None else keyring.open(provider, field, sealed)
    return get


def file_credentials(paths: Mapping[str, str]) -> Credentials:
    """``Credentials`` read from local files (field -> path): development and tests."""
    def get(field: str) -> bytes | None:
        path = paths.get(field)
        if path is None:
            return None
        with open(os.path.expanduser(path), "rb") as f:
            return f.read()
    return get


@dataclass
class Connection:
    """One provider's API server: requests, discovery, counters. Thread-safe."""

    provider: str
    method: str
    transport: Transport
    settings: ClusterSettings
    expires_at: float | None = None  # wall clock: a client certificate from an exec plugin expires
    fingerprint: str = ""
    created: float = field(default_factory=time.monotonic)
    last_used: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic
    discovery: Discovery = field(init=False)

    def __post_init__(self) -> None:
        self.discovery = Discovery(self.transport)
        self._written: dict[str, str] = {}
        self._rv_lock = threading.Lock()
        # Defence in depth: any log line that would carry this connection's secrets is masked.
        add_redactor(self._redact)

    def _redact(self, text: str) -> str:
        for secret in self.transport.secrets():
            value = (secret.decode(errors="replace") if isinstance(secret, bytes) else secret).strip()
            if len(value) >= 6 and value in text:
                text = text.replace(value, "[REDACTED]")
        return text

    @property
    def server(self) -> str:
        return self.transport.server

    @property
    def stats(self) -> Any:
        return self.transport.stats

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        self.last_used = self.clock()
        return self.transport.request(method, path, **kwargs)

    def get_json(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def stream(self, path: str, **kwargs: Any) -> Any:
        """A watch: JSON documents as they arrive (see ``Transport.stream``)."""
        self.last_used = self.clock()
        return self.transport.stream(path, **kwargs)

    def note_write(self, rt: ResourceType, obj: Any) -> None:
        """Remember the resourceVersion a write returned, per resource type, so that LISTs from
        the watch cache wait until the cache has caught up with our own writes."""
        rv = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
        if not rv:
            return
        key = f"{rt.group}/{rt.plural}"
        with self._rv_lock:
            seen = self._written.get(key)
            if seen is None or not (seen.isdigit() and rv.isdigit()) or int(rv) > int(seen):
                self._written[key] = rv

    def written_version(self, rt: ResourceType) -> str | None:
        with self._rv_lock:
            return self._written.get(f"{rt.group}/{rt.plural}")

    def resource(self, api_version: str, kind: str) -> ResourceType | None:
        self.last_used = self.clock()
        return self.discovery.resource(api_version, kind)

    def version(self) -> dict[str, Any]:
        return self.get_json("/version", what="GET /version")

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at - 60

    def close(self) -> None:
        remove_redactor(self._redact)
        self.transport.close()

    def __repr__(self) -> str:
        return f"Connection({self.provider!r}, {self.method}, {self.server})"


def connect(provider: str, spec: Any, credentials: Credentials | None = None,
            settings: ClusterSettings = DEFAULT_SETTINGS, *, in_cluster_dir: str = IN_CLUSTER_DIR,
            environ: Mapping[str, str] | None = None) -> Connection:
    """Build the connection (no request is sent; ``check_health`` is the first)."""
    credentials = credentials or no_credentials
    auth = spec.auth
    method = auth.method
    opened: list[bytes] = []

    def cred(name: str, required: bool = False) -> bytes | None:
        try:
            value = credentials(name)
        except FactoryError as exc:  # SealingError and friends name the field, never the value
            raise ConnectFailed(f"credentials.{name} could not be opened: {exc}", provider=provider) from None
        except OSError as exc:
            raise ConnectFailed(f"credentials.{name} could not be read: {exc.strerror}", provider=provider) from None
        if value is not None:
            value = value if isinstance(value, bytes) else str(value).encode()
            opened.append(value)
        if required and not value:
            raise ConnectFailed(f"auth method {method} needs credentials.{name}", provider=provider)
        return value

    def endpoint() -> str:
        if not spec.endpoint:
            raise ConnectFailed(f"auth method {method} needs spec.endpoint", provider=provider)
        return str(spec.endpoint)

    try:
        if method == "kubeconfig":
            content = cred("kubeconfig")
            if content is None and not auth.kubeconfig:
                raise ConnectFailed("auth method kubeconfig needs auth.kubeconfig or credentials.kubeconfig")
            target = load_kubeconfig(path=None if content is not None else auth.kubeconfig, content=content,
                                     context=auth.context)
            return _from_kubeconfig(provider, method, target, settings, sealed=content, path=auth.kubeconfig,
                                    secrets=tuple(opened))
        if method == "in-cluster":
            env = os.environ if environ is None else environ
            host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise ConnectFailed("auth method in-cluster works only inside a pod (KUBERNETES_SERVICE_HOST is not set)")
            host = f"[{host}]" if ":" in host else host
            ca = _read_optional(os.path.join(in_cluster_dir, "ca.crt"))
            token = FileToken(os.path.join(in_cluster_dir, "token"))
            token.token()  # fail now if the token is not there
            return _connection(provider, method, settings, f"https://{host}:{port}", ca_pem=ca, token=token)
        if method in TOKEN_METHODS:
            token = cred("token", required=True)
            assert token is not None
            return _connection(provider, method, settings, endpoint(), ca_pem=cred("caCert"),
                               token=StaticToken(token.decode()), secrets=tuple(opened))
        if method == "certificate":
            cert, key = cred("clientCert", required=True), cred("clientKey", required=True)
            assert cert is not None and key is not None
            return _connection(provider, method, settings, endpoint(), ca_pem=cred("caCert"), client_cert=(cert, key),
                               secrets=tuple(opened))
        if method in EXEC_METHODS:
            server = endpoint()
            ca = cred("caCert")
            config = cloud_plugin(method, auth, getattr(spec, "region", None))
            secret_env: dict[str, bytes] = {}
            if method == "azure-managed-identity":
                client_secret = cred("clientSecret")
                if client_secret:
                    config = azure_with_secret(config, auth)
                    secret_env = {"AAD_SERVICE_PRINCIPAL_CLIENT_SECRET": client_secret, "AZURE_CLIENT_SECRET": client_secret}
            info = {"server": server}
            runner = ExecRunner(config, timeout=settings.exec_timeout, secret_env=secret_env, cluster_info=info)
            return _exec_connection(provider, method, settings, server, ca, runner, tuple(opened))
        raise ConnectFailed(f"auth method {method!r} is not supported")
    except ClusterError as exc:
        if exc.provider is None:
            exc.provider = provider
        raise


def _read_optional(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _connection(provider: str, method: str, settings: ClusterSettings, server: str, *, ca_pem: bytes | None = None,
                insecure: bool = False, tls_server_name: str | None = None,
                client_cert: tuple[bytes, bytes] | None = None, token: TokenSource | None = None,
                basic_auth: tuple[str, str] | None = None, secrets: tuple[bytes, ...] = (),
                expires_at: float | None = None) -> Connection:
    transport = Transport(server, settings=settings, provider=provider, ca_pem=ca_pem, insecure=insecure,
                          tls_server_name=tls_server_name, client_cert=client_cert, token=token, basic_auth=basic_auth,
                          secrets=tuple(s for s in secrets if s))
    return Connection(provider, method, transport, settings, expires_at=expires_at)


def _exec_connection(provider: str, method: str, settings: ClusterSettings, server: str, ca: bytes | None,
                     runner: ExecRunner, secrets: tuple[bytes, ...], *, insecure: bool = False,
                     tls_server_name: str | None = None) -> Connection:
    first = runner.run()
    if first.token:
        return _connection(provider, method, settings, server, ca_pem=ca, insecure=insecure,
                           tls_server_name=tls_server_name, token=ExecToken(runner, first), secrets=secrets)
    assert first.client_cert is not None
    return _connection(provider, method, settings, server, ca_pem=ca, insecure=insecure, tls_server_name=tls_server_name,
                       client_cert=first.client_cert, secrets=secrets + first.client_cert, expires_at=first.expires_at)


def _from_kubeconfig(provider: str, method: str, target: KubeconfigTarget, settings: ClusterSettings, *,
                     sealed: bytes | None, path: str | None, secrets: tuple[bytes, ...]) -> Connection:
    common: dict[str, Any] = {"ca_pem": target.ca_pem, "insecure": target.insecure,
                              "tls_server_name": target.tls_server_name}
    if target.exec is not None:
        env = dict(target.exec.env)
        if sealed is None and path:
            env.setdefault("KUBECONFIG", os.path.abspath(os.path.expanduser(path)))
        config = dataclasses.replace(target.exec, env=tuple(env.items()))
        runner = ExecRunner(config, timeout=settings.exec_timeout, kubeconfig=sealed, cluster_info=target.cluster_info)
        return _exec_connection(provider, method, settings, target.server, target.ca_pem, runner, secrets,
                                insecure=target.insecure, tls_server_name=target.tls_server_name)
    token: TokenSource | None = None
    if target.token:
        token = StaticToken(target.token)
        secrets += (target.token.encode(),)
    elif target.token_file:
        token = FileToken(target.token_file)
    if target.client_cert:
        secrets += target.client_cert
    return _connection(provider, method, settings, target.server, client_cert=target.client_cert, token=token,
                       basic_auth=target.basic_auth, secrets=secrets, **common)
