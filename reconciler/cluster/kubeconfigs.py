"""Reading a kubeconfig (a local file, or sealed content held in memory) into connection facts.

Supported: ``server``, ``certificate-authority(-data)``, ``insecure-skip-tls-verify``,
``tls-server-name``; users with ``token``/``tokenFile``, ``client-certificate(-data)`` +
``client-key(-data)``, ``exec`` plugins, or ``username``/``password``. The legacy
``auth-provider`` (gcp, azure, oidc) is refused with a pointer to its exec-plugin successor.
Embedded data stays in memory; referenced files are read, relative to the kubeconfig's folder.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from typing import Any

import yaml

from .errors import ConnectFailed
from .exec_plugins import DEFAULT_API_VERSION, ExecConfig


@dataclass(frozen=True)
class KubeconfigTarget:
    context: str
    server: str
    ca_pem: bytes | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_file: str | None = None
    client_cert: tuple[bytes, bytes] | None = None
    basic_auth: tuple[str, str] | None = None
    exec: ExecConfig | None = None
    cluster_info: dict[str, Any] | None = None  # for exec plugins with provideClusterInfo

    def __repr__(self) -> str:  # never print credentials
        return f"KubeconfigTarget(context={self.context!r}, server={self.server!r})"


def load_kubeconfig(*, path: str | None = None, content: bytes | None = None,
                    context: str | None = None) -> KubeconfigTarget:
    """The connection facts of ``context`` (default: the current context)."""
    where = "the sealed kubeconfig" if content is not None else f"kubeconfig {path}"
    base = None
    if content is None:
        if not path:
            raise ConnectFailed("no kubeconfig given")
        full = os.path.expanduser(path)
        base = os.path.dirname(os.path.abspath(full))
        try:
            with open(full, "rb") as f:
                content = f.read()
        except OSError as exc:
            raise ConnectFailed(f"cannot read {where}: {exc.strerror}") from None
    try:
        config = yaml.load(content, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        # The YAML error would quote the offending line, which may hold a credential.
        raise ConnectFailed(f"{where} is not valid YAML") from None
    if not isinstance(config, dict):
        raise ConnectFailed(f"{where} is not a kubeconfig (expected a mapping)")

    def named(section: str, name: str) -> dict[str, Any]:
        for item in config.get(section) or ():
            if isinstance(item, dict) and item.get("name") == name:
                return item.get(section[:-1]) or {}
        names = ", ".join(str(i.get("name")) for i in config.get(section) or () if isinstance(i, dict))
        raise ConnectFailed(f"{where}: {section[:-1]} '{name}' not found" + (f" (have: {names})" if names else ""))

    ctx_name = context or config.get("current-context")
    if not ctx_name:
        raise ConnectFailed(f"{where} has no current-context; name a context in the Provider's auth.context")
    ctx = named("contexts", ctx_name)
    cluster = named("clusters", ctx.get("cluster") or "")
    user = named("users", ctx["user"]) if ctx.get("user") else {}
    server = cluster.get("server")
    if not server:
        raise ConnectFailed(f"{where}: cluster '{ctx.get('cluster')}' has no server")

    def data_or_file(obj: dict[str, Any], key: str) -> bytes | None:
        data = obj.get(f"{key}-data")
        if data:
            try:
                return base64.b64decode(data, validate=False)
            except (binascii.Error, ValueError):
                raise ConnectFailed(f"{where}: {key}-data is not base64") from None
        file = obj.get(key)
        if file:
            return _read(file, base, where, key)
        return None

    ca = data_or_file(cluster, "certificate-authority")
    if "auth-provider" in user:
        provider = (user.get("auth-provider") or {}).get("name", "?")
        raise ConnectFailed(f"{where}: the legacy auth-provider '{provider}' is not supported; use its exec "
                            "plugin (gke-gcloud-auth-plugin, kubelogin, ...) instead")
    token = user.get("token")
    token_file = user.get("tokenFile")
    if token_file and base and not os.path.isabs(token_file):
        token_file = os.path.join(base, token_file)
    cert, key = data_or_file(user, "client-certificate"), data_or_file(user, "client-key")
    if bool(cert) != bool(key):
        raise ConnectFailed(f"{where}: user '{ctx.get('user')}' has a client certificate without its key, or a key "
                            "without its certificate")
    basic = (str(user["username"]), str(user["password"])) if user.get("username") and user.get("password") else None
    exec_config = None
    if isinstance(user.get("exec"), dict):
        spec = user["exec"]
        if not spec.get("command"):
            raise ConnectFailed(f"{where}: user '{ctx.get('user')}' has an exec section without a command")
        env = tuple((str(e["name"]), str(e.get("value", ""))) for e in spec.get("env") or () if isinstance(e, dict)
                    and e.get("name"))
        command = str(spec["command"])
        if base and os.sep in command and not os.path.isabs(command):
            command = os.path.join(base, command)
        exec_config = ExecConfig(command, tuple(str(a) for a in spec.get("args") or ()), env,
                                 str(spec.get("apiVersion") or DEFAULT_API_VERSION),
                                 provide_cluster_info=bool(spec.get("provideClusterInfo")), working_dir=base)
    cluster_info = {"server": server, "insecure-skip-tls-verify": bool(cluster.get("insecure-skip-tls-verify"))}
    if ca:
        cluster_info["certificate-authority-data"] = base64.b64encode(ca).decode()
    return KubeconfigTarget(
        context=ctx_name, server=str(server), ca_pem=ca, insecure=bool(cluster.get("insecure-skip-tls-verify")),
        tls_server_name=cluster.get("tls-server-name"), token=str(token) if token else None, token_file=token_file,
        client_cert=(cert, key) if cert and key else None, basic_auth=basic, exec=exec_config,
        cluster_info=cluster_info)


def _read(file: str, base: str | None, where: str, key: str) -> bytes:
    path = os.path.expanduser(file)
    if not os.path.isabs(path):
        if base is None:
            raise ConnectFailed(f"{where}: {key} must be embedded ({key}-data) or an absolute path")
        path = os.path.join(base, path)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ConnectFailed(f"{where}: cannot read {key} {path}: {exc.strerror}") from None
