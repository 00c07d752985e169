"""Kubeconfig ``exec`` credential plugins: the clouds' own identity (EKS, GKE, AKS, OKE).

A plugin is a program that prints an ``ExecCredential`` (``client.authentication.k8s.io``
v1beta1 or v1) with a bearer token, or a client certificate, and maybe an expiry. This is
the protocol kubectl and client-go follow; it is run here rather than through
``kubernetes.config`` so that a plugin gets a timeout, its failures become clear errors (the
client library logs them and goes on unauthenticated), its stderr is scrubbed before it
reaches a message, and its token is cached until shortly before it expires and refreshed
after a 401.

``cloud_plugin(method, auth, region)`` gives the command for each cloud method:

- EKS  ``aws eks get-token --cluster-name NAME [--role-arn ARN] [--region R] --output json``
- GKE  ``gke-gcloud-auth-plugin`` (application default credentials: workload identity)
- AKS  ``kubelogin get-token --login msi|workloadidentity|spn --server-id ID [--client-id C] [--tenant-id T]``
- OKE  ``oci ce cluster generate-token --cluster-id OCID --region R --auth instance_principal``

A plugin that needs a kubeconfig on disk (a sealed kubeconfig whose user is an exec plugin)
gets ``KUBECONFIG`` pointing at a copy in a private directory (0700) that is removed as soon
as the plugin exits.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ConnectFailed, ConnectUnavailable, scrub
from .transport import private_dir

API_GROUP = "client.authentication.k8s.io"
DEFAULT_API_VERSION = f"{API_GROUP}/v1beta1"
EXPIRY_SKEW = 60.0  # refresh this long before the plugin's expirationTimestamp


@dataclass(frozen=True)
class ExecConfig:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # non-secret environment for the plugin
    api_version: str = DEFAULT_API_VERSION
    install_hint: str | None = None  # what to install when the command is missing
    provide_cluster_info: bool = False
    working_dir: str | None = None

    def describe(self) -> str:
        return os.path.basename(self.command)


@dataclass(frozen=True)
class ExecResult:
    token: str | None
    client_cert: tuple[bytes, bytes] | None
    expires_at: float | None  # time.time() seconds


@dataclass
class ExecRunner:
    """Runs one plugin configuration; the secret parts of its environment stay in memory."""

    config: ExecConfig
    timeout: float = 60.0
    secret_env: Mapping[str, bytes] = field(default_factory=dict)  # e.g. a client secret
    kubeconfig: bytes | None = None  # written privately for the plugin's run only
    cluster_info: Mapping[str, Any] | None = None

    def run(self) -> ExecResult:
        env = dict(os.environ)
        env.update(dict(self.config.env))
        env.update({k: v.decode() for k, v in self.secret_env.items()})
        spec: dict[str, Any] = {"interactive": False}
        if self.config.provide_cluster_info and self.cluster_info is not None:
            spec["cluster"] = dict(self.cluster_info)
        env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": self.config.api_version, "kind": "ExecCredential",
                                                  "spec": spec})
        if self.kubeconfig is not None:
            with private_dir("image-factory-exec-") as d:
                path = os.path.join(d, "kubeconfig")
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(self.kubeconfig)
                env["KUBECONFIG"] = path
                return self._run(env)
        return self._run(env)

    def _secrets(self) -> list[bytes]:
        return list(self.secret_env.values())

    def _run(self, env: dict[str, str]) -> ExecResult:
        name = self.config.describe()
        argv = [self.config.command, *self.config.args]
        try:
            proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=self.timeout, cwd=self.config.working_dir)
        except FileNotFoundError:
            hint = f"; {self.config.install_hint}" if self.config.install_hint else ""
            raise ConnectFailed(f"exec plugin '{name}' was not found on PATH{hint}") from None
        except PermissionError:
            raise ConnectFailed(f"exec plugin '{name}' is not executable") from None
        except subprocess.TimeoutExpired:
            raise ConnectUnavailable(f"exec plugin '{name}' did not answer within {self.timeout:g}s") from None
        if proc.returncode != 0:
            err = scrub(proc.stderr.decode(errors="replace"), self._secrets())
            raise ConnectFailed(f"exec plugin '{name}' failed (exit {proc.returncode})" + (f": {err}" if err else ""))
        return self._parse(proc.stdout, name)

    def _parse(self, stdout: bytes, name: str) -> ExecResult:
        # The output holds the token: never quote it in a message.
        try:
            data = json.loads(stdout)
        except ValueError:
            raise ConnectFailed(f"exec plugin '{name}' did not print JSON (an ExecCredential was expected)") from None
        if not isinstance(data, dict) or data.get("kind") != "ExecCredential":
            raise ConnectFailed(f"exec plugin '{name}' did not print an ExecCredential")
        version = str(data.get("apiVersion") or "")
        if version.split("/")[0] != API_GROUP:
            raise ConnectFailed(f"exec plugin '{name}' printed apiVersion '{scrub(version, limit=80)}', "
                                f"not {API_GROUP}/*")
        status = data.get("status")
        if not isinstance(status, dict):
            raise ConnectFailed(f"exec plugin '{name}' printed an ExecCredential without status")
        token = status.get("token")
        cert, key = status.get("clientCertificateData"), status.get("clientKeyData")
        if not token and not (cert and key):
            raise ConnectFailed(f"exec plugin '{name}' gave neither a token nor a client certificate and key")
        expires = _parse_time(status.get("expirationTimestamp"))
        if status.get("expirationTimestamp") and expires is None:
            raise ConnectFailed(f"exec plugin '{name}' printed an unreadable expirationTimestamp")
        client_cert = (str(cert).encode(), str(key).encode()) if cert and key and not token else None
        return ExecResult(str(token) if token else None, client_cert, expires)


def _parse_time(value: Any) -> float | None:
    if not value:
        return None
    try:
        text = str(value).replace("Z", "+00:00")
        stamp = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=datetime.timezone.utc)
    return stamp.timestamp()


class ExecToken:
    """A ``TokenSource`` backed by an exec plugin: cached until ``EXPIRY_SKEW`` before expiry."""

    def __init__(self, runner: ExecRunner, first: ExecResult | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._runner, self._clock = runner, clock
        self._lock = threading.Lock()
        self._result = first
        self._known: list[str] = [first.token] if first and first.token else []

    def _fresh(self) -> ExecResult:
        result = self._result
        if result is None or (result.expires_at is not None and self._clock() >= result.expires_at - EXPIRY_SKEW):
            result = self._runner.run()
            if not result.token:
                raise ConnectFailed(f"exec plugin '{self._runner.config.describe()}' switched from a token "
                                    "to a client certificate; reconnect")
            self._result = result
            self._known = (self._known + [result.token])[-3:]
        return result

    def token(self) -> str:
        with self._lock:
            token = self._fresh().token
            assert token is not None
            return token

    def refresh(self) -> bool:
        with self._lock:
            self._result = None
        return True

    def secrets(self) -> tuple[str, ...]:
        return tuple(self._known)

    @property
    def expires_at(self) -> float | None:
        return self._result.expires_at if self._result else None


# -- the clouds' plugins -----------------------------------------------------------------------

AKS_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


def cloud_plugin(method: str, auth: Any, region: str | None = None) -> ExecConfig:
    """The exec plugin a cloud auth method uses (``auth`` is the Provider's ``spec.auth``)."""
    if method == "aws-iam":
        args = ["eks", "get-token", "--cluster-name", auth.clusterName]
        if auth.roleArn:
            args += ["--role-arn", auth.roleArn]
        if region:
            args += ["--region", region]
        args += ["--output", "json"]
        return ExecConfig("aws", tuple(args), env=(("AWS_STS_REGIONAL_ENDPOINTS", "regional"),),
                          install_hint="install the AWS CLI v2 (it provides `aws eks get-token`)")
    if method == "gcp-workload-identity":
        env = [("CLOUDSDK_CORE_PROJECT", auth.project)]
        return ExecConfig("gke-gcloud-auth-plugin", (), env=tuple(env), provide_cluster_info=True,
                          install_hint="install gke-gcloud-auth-plugin (gcloud components install gke-gcloud-auth-plugin)")
    if method == "azure-managed-identity":
        login = auth.loginMode
        args = ["get-token", "--login", login, "--server-id", auth.serverId or AKS_SERVER_ID]
        if auth.clientId:
            args += ["--client-id", auth.clientId]
        if auth.tenantId and login in ("workloadidentity", "spn"):
            args += ["--tenant-id", auth.tenantId]
        return ExecConfig("kubelogin", tuple(args), install_hint="install Azure kubelogin (az aks install-cli)")
    if method == "oci-instance-principal":
        args = ("ce", "cluster", "generate-token", "--cluster-id", auth.clusterId, "--region", auth.region,
                "--auth", "instance_principal")
        return ExecConfig("oci", args, install_hint="install the OCI CLI (it provides `oci ce cluster generate-token`)")
    raise ConnectFailed(f"auth method {method} has no exec plugin")


def azure_with_secret(config: ExecConfig, auth: Any) -> ExecConfig:
    """AKS with a sealed ``credentials.clientSecret``: service-principal login (the secret goes
    to kubelogin through its environment, never its command line)."""
    args = list(config.args)
    i = args.index("--login")
    args[i + 1] = "spn"
    if auth.tenantId and "--tenant-id" not in args:
        args += ["--tenant-id", auth.tenantId]
    return ExecConfig(config.command, tuple(args), config.env, config.api_version, config.install_hint)
