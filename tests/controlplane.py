"""A real Kubernetes control plane for the integration tests: library and pytest plugin.

The processes (etcd, kube-apiserver and kube-controller-manager 1.20.2) are built, started and
stopped by ``scripts/control-plane``; this module only drives that script and reads the state
it leaves in its directory, so there is one implementation of each step.

Library use::

    cp = ControlPlane().start(tmp_dir)      # or: with ControlPlane().start(d) as cp: ...
    cp.kubeconfig, cp.server, cp.token, cp.ca_file
    cp.request("GET", "/version")           # -> (status, parsed JSON body)
    cp.kubectl("get", "ns")                 # kubectl with cp.kubeconfig
    cert_pem, key_pem = cp.mint_client_cert("alice", ["devs"])
    cp.stop_apiserver(); cp.start_apiserver(); cp.restart_apiserver(); cp.compact_etcd()
    cp.stop()

As a pytest plugin (``pytest_plugins = ["tests.controlplane"]``) it provides the session
fixture ``control_plane`` and the marker ``controlplane``, set on every test that uses the
fixture (select them with ``-m controlplane``, leave them out with ``-m "not controlplane"``).
When the binaries are not cached the fixture builds them if ``CI`` is set or
``IMAGE_FACTORY_BUILD_CONTROL_PLANE=1``, and skips otherwise; in CI any failure to build or
start fails the tests.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "scripts" / "control-plane"
BUILD_TIMEOUT = 3600
START_TIMEOUT = 300
STOP_TIMEOUT = 120

#: user names of the static tokens written by ``scripts/control-plane start``
ADMIN_USER = "admin"  # group system:masters
TESTER_USER = "tester"  # no groups, no RBAC
RECONCILER_USER = "image-factory-reconciler"  # group image-factory:reconcilers, no RBAC


class ControlPlaneError(RuntimeError):
    """The control-plane script failed; the message carries its output."""


def _run_script(*args: str, timeout: float, env: dict[str, str] | None = None,
                script: Path = SCRIPT) -> str:
    try:
        proc = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{script.name} {' '.join(args)} timed out after {timeout}s:\n"
                                f"{_text(exc.stderr)[-4000:]}") from None
    if proc.returncode != 0:
        raise ControlPlaneError(f"{script.name} {' '.join(args)} failed (exit {proc.returncode}):\n"
                                f"{proc.stderr[-6000:]}")
    return proc.stdout


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def is_built(script: Path = SCRIPT) -> bool:
    """Are kube-apiserver/kube-controller-manager cached and etcd installed?"""
    return subprocess.run([str(script), "is-built"], stdin=subprocess.DEVNULL,
                          capture_output=True).returncode == 0


def build(script: Path = SCRIPT) -> None:
    """Build and cache the binaries (idempotent; minutes when nothing is cached)."""
    _run_script("build", timeout=BUILD_TIMEOUT, script=script)


class ControlPlane:
    """One etcd + kube-apiserver + kube-controller-manager, with its state in ``workdir``."""

    def __init__(self, script: Path | str = SCRIPT) -> None:
        self.script = Path(script)
        self.workdir: Path | None = None
        self._state: dict[str, str] = {}
        self._pem_dir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, workdir: Path | str, *, owner_pid: int | None = None) -> ControlPlane:
        """Start a fresh cluster in ``workdir`` (must be empty or new); CRDs are installed.

        A watchdog stops it once ``owner_pid`` (default: this process) is gone, so even a
        killed test run leaves no process behind.
        """
        if self.workdir is not None:
            raise ControlPlaneError(f"already started in {self.workdir}")
        workdir = Path(workdir).resolve()
        env = dict(os.environ, CONTROL_PLANE_OWNER_PID=str(owner_pid or os.getpid()))
        self.workdir = workdir
        try:
            _run_script("start", str(workdir), timeout=START_TIMEOUT, env=env, script=self.script)
        except BaseException:
            self.stop()
            raise
        self._load_state()
        return self

    def stop(self) -> None:
        """Stop every process of this control plane (TERM, then KILL); safe to call twice."""
        if self.workdir is None:
            return
        _run_script("stop", str(self.workdir), timeout=STOP_TIMEOUT, script=self.script)

    def stop_apiserver(self) -> None:
        """Take the API server down (etcd and the controller manager keep running)."""
        self._script("stop-apiserver")

    def start_apiserver(self) -> None:
        """Start the API server again with the same port, certificates and tokens; waits for /readyz."""
        self._script("start-apiserver")

    def restart_apiserver(self) -> None:
        self._script("restart-apiserver")

    def pids(self) -> dict[str, int]:
        """The pids recorded for the processes that run now (name -> pid)."""
        result = {}
        for pidfile in sorted((self._dir / "pids").glob("*.pid")):
            text = pidfile.read_text().strip()
            if text:
                result[pidfile.stem] = int(text)
        return result

    def __enter__(self) -> ControlPlane:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- connection facts ----------------------------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        """kubeconfig with contexts ``admin`` (current), ``tester`` and ``reconciler``."""
        return Path(self._get("KUBECONFIG"))

    @property
    def server(self) -> str:
        """``https://127.0.0.1:PORT``"""
        return self._get("SERVER")

    @property
    def token(self) -> str:
        """The admin's bearer token (user ``admin``, group ``system:masters``); random per start."""
        return self._get("ADMIN_TOKEN")

    @property
    def tester_token(self) -> str:
        """Bearer token of user ``tester``: authenticated, no RBAC."""
        return self._get("TESTER_TOKEN")

    @property
    def reconciler_token(self) -> str:
        """Bearer token of ``image-factory-reconciler`` (group ``image-factory:reconcilers``), no RBAC."""
        return self._get("RECONCILER_TOKEN")

    @property
    def tokens(self) -> dict[str, str]:
        """user name -> static bearer token"""
        return {ADMIN_USER: self.token, TESTER_USER: self.tester_token,
                RECONCILER_USER: self.reconciler_token}

    @property
    def ca_file(self) -> Path:
        """CA that signed the API server's serving certificate (what clients verify)."""
        return Path(self._get("CA_FILE"))

    @property
    def client_ca_file(self) -> Path:
        """The API server's ``--client-ca-file``: client certificates it signs authenticate."""
        return Path(self._get("CLIENT_CA_FILE"))

    @property
    def client_ca_key_file(self) -> Path:
        return Path(self._get("CLIENT_CA_KEY_FILE"))

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self._get('ETCD_PORT')}"

    # -- helpers for tests ---------------------------------------------------------------------

    def mint_client_cert(self, common_name: str, organization: str | Sequence[str] | None = None,
                         *, days: int = 1) -> tuple[bytes, bytes]:
        """A client certificate signed by the API server's client CA: (cert_pem, key_pem).

        The API server takes the CN as user name and each O as a group.
        """
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        ca_cert = x509.load_pem_x509_certificate(self.client_ca_file.read_bytes())
        ca_key = serialization.load_pem_private_key(self.client_ca_key_file.read_bytes(), None)
        if isinstance(organization, str):
            organization = [organization]
        attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organization or ()]
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    def write_kubeconfig(self, path: Path | str, *, token: str | None = None,
                         client_cert: tuple[bytes, bytes] | None = None, user: str = "user") -> Path:
        """Write a kubeconfig for this cluster with other credentials: a token or a
        ``(cert_pem, key_pem)`` pair from :meth:`mint_client_cert` (embedded as data)."""
        if (token is None) == (client_cert is None):
            raise ValueError("give exactly one of token= or client_cert=")
        if token is not None:
            credentials: dict[str, str] = {"token": token}
        else:
            cert_pem, key_pem = client_cert  # type: ignore[misc]
            credentials = {"client-certificate-data": base64.b64encode(cert_pem).decode(),
                           "client-key-data": base64.b64encode(key_pem).decode()}
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "image-factory-test", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64.b64encode(self.ca_file.read_bytes()).decode()}}],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "image-factory-test", "user": user}}],
            "current-context": user,
        }
        path = Path(path)
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        path.chmod(0o600)
        return path

    def ssl_context(self, client_cert: tuple[bytes, bytes] | None = None) -> ssl.SSLContext:
        """An SSL context that trusts the API server, optionally presenting a client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if client_cert is not None:
            with tempfile.TemporaryDirectory(dir=self._pems()) as tmp:
                cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
                cert_path.write_bytes(client_cert[0])
                key_path.touch(0o600)
                key_path.write_bytes(client_cert[1])
                ctx.load_cert_chain(cert_path, key_path)
        return ctx

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                client_cert: tuple[bytes, bytes] | None = None,
                content_type: str = "application/json", anonymous: bool = False,
                timeout: float = 30) -> tuple[int, Any]:
        """One API request; returns (HTTP status, JSON body, or text if not JSON).

        Authenticates as admin unless ``token``, ``client_cert`` or ``anonymous`` says otherwise.
        HTTP errors are returned, not raised; connection errors raise ``urllib.error.URLError``.
        """
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        else:
            data = None
        if not anonymous and client_cert is None:
            headers["Authorization"] = f"Bearer {token or self.token}"
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(client_cert), timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def kubectl(self, *args: str, context: str | None = None, kubeconfig: Path | str | None = None,
                input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster.

        ``context``: admin (the default), tester or reconciler; ``kubeconfig``: another one,
        e.g. from :meth:`write_kubeconfig`. Raises ControlPlaneError on failure if ``check``.
        """
        kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
        command = [kubectl, f"--kubeconfig={kubeconfig or self.kubeconfig}"]
        if context:
            command.append(f"--context={context}")
        proc = subprocess.run([*command, *args], input=input, capture_output=True, text=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n"
                                    f"{proc.stderr}{proc.stdout}")
        return proc

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (old resourceVersions then expire: 410 Gone)."""
        def etcd(path: str, body: dict[str, Any]) -> dict[str, Any]:
            req = urllib.request.Request(self.etcd_url + path, data=json.dumps(body).encode(),
                                         method="POST", headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.load(resp)

        revision = int(etcd("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
        etcd("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def log(self, name: str) -> str:
        """The log of ``etcd``, ``kube-apiserver`` or ``kube-controller-manager``."""
        return (self._dir / "logs" / f"{name}.log").read_text(errors="replace")

    # -- internals -------------------------------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise ControlPlaneError("control plane not started")
        return self.workdir

    def _script(self, command: str) -> None:
        _run_script(command, str(self._dir), timeout=START_TIMEOUT, script=self.script)

    def _load_state(self) -> None:
        state = {}
        for line in (self._dir / "state.env").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                state[key] = value
        self._state = state

    def _get(self, key: str) -> str:
        if not self._state:
            raise ControlPlaneError("control plane not started")
        return self._state[key]

    def _pems(self) -> Path:
        if self._pem_dir is None:
            self._pem_dir = self._dir / "client-pems"
            self._pem_dir.mkdir(mode=0o700, exist_ok=True)
        return self._pem_dir


# -- pytest plugin ---------------------------------------------------------------------------------

def in_ci() -> bool:
    value = os.environ.get("CI", "").strip().lower()
    return value not in ("", "0", "false", "no")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "controlplane: needs the real Kubernetes control plane (scripts/control-plane); "
                   "set on every test that uses the control_plane fixture")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.controlplane)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """One real control plane for the whole session (CRDs installed); always stopped at the end.

    Tests share it: give each test its own namespace or object names.
    """
    ci = in_ci()
    cp = ControlPlane()
    try:
        if not is_built():
            if ci or os.environ.get("IMAGE_FACTORY_BUILD_CONTROL_PLANE") == "1":
                build()
            else:
                pytest.skip("the Kubernetes control plane is not built: run `scripts/control-plane build` "
                            "(about 5 minutes, cached in ~/.cache/image-factory) or set "
                            "IMAGE_FACTORY_BUILD_CONTROL_PLANE=1")
        cp.start(tmp_path_factory.mktemp("control-plane"))
    except Exception as exc:  # pytest.skip is a BaseException and passes through
        pytest.fail(f"the Kubernetes control plane could not be {'started' if is_built() else 'built'}"
                    f"{' (CI: this must not be skipped)' if ci else ''}: {exc}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()
