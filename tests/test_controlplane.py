"""The control-plane fixture gives the tests a real Kubernetes 1.20 API server.

These tests prove what the integration tests rely on: the version, the installed CRDs,
server-side apply with schema pruning, the status subresource, resourceVersion conflicts,
static-token and client-certificate authentication, garbage collection by the controller
manager, taking the API server down and up, watch expiry, and a stop that leaves nothing behind.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import socket
import time
import urllib.error
import uuid
from pathlib import Path

import pytest

from tests.controlplane import RECONCILER_USER, TESTER_USER, ControlPlane

CRDS = Path(__file__).parent / "fixtures" / "crds"
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _running(pid: int) -> bool:
    """Is pid a live process (zombies, which nobody may reap here, count as gone)?"""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _wait_for(predicate, timeout: float = 30, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@pytest.fixture
def namespace(control_plane: ControlPlane):
    name = f"t-{uuid.uuid4().hex[:10]}"
    status, body = control_plane.request(
        "POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    assert status == 201, body
    yield name
    control_plane.request("DELETE", f"/api/v1/namespaces/{name}")


def test_crd_fixtures_are_the_upstream_files():
    sums = re.findall(r"^([0-9a-f]{64})  (\S+)$", (CRDS / "README.md").read_text(), re.M)
    files = sorted(str(p.relative_to(CRDS)) for p in CRDS.rglob("*.yaml"))
    assert sorted(name for _, name in sums) == files
    for digest, name in sums:
        assert hashlib.sha256((CRDS / name).read_bytes()).hexdigest() == digest, name
    # the compatibility step is needed: upstream Tekton schemas carry `default: ""`
    assert 'default: ""' in (CRDS / "tekton-v1.15.0" / "300-pipelinerun.yaml").read_text()


def test_api_server_is_kubernetes_1_20(control_plane: ControlPlane):
    status, body = control_plane.request("GET", "/version")
    assert status == 200, body
    assert body["gitVersion"].startswith("v1.20."), body
    assert (body["major"], body["minor"]) == ("1", "20")
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert control_plane.ca_file.is_file() and control_plane.kubeconfig.is_file()


def test_kubeconfig_works_for_kubectl(control_plane: ControlPlane):
    out = control_plane.kubectl("get", "namespace", "default", "-o", "json").stdout
    assert json.loads(out)["status"]["phase"] == "Active"
    # the controller manager runs: the service-account controller made the default account
    assert _wait_for(lambda: control_plane.request(
        "GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] == 200)


@pytest.mark.parametrize("crd", [
    "pipelineruns.tekton.dev", "taskruns.tekton.dev", "pipelines.tekton.dev", "tasks.tekton.dev",
    "buildkitpools.buildkit.smrt-devops.net", "buildkitworkers.buildkit.smrt-devops.net",
    "buildkitoidcconfigs.buildkit.smrt-devops.net",
])
def test_crds_are_established(control_plane: ControlPlane, crd: str):
    status, body = control_plane.request("GET", f"{CRD_PATH}/{crd}")
    assert status == 200, body
    conditions = {c["type"]: c["status"] for c in body["status"]["conditions"]}
    assert conditions.get("Established") == "True", conditions
    # the schema is installed (only `default: ""` keys were dropped), not replaced by a stub
    schemas = [v["schema"]["openAPIV3Schema"] for v in body["spec"]["versions"]]
    assert all(s.get("properties", {}).get("spec") for s in schemas), crd
    assert '"default":""' not in json.dumps(body, separators=(",", ":"))


PIPELINERUN = """\
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: {name}
  namespace: {namespace}
  labels:
    app.kubernetes.io/managed-by: image-factory
spec:
  pipelineRef:
    name: build-image
  params:
    - name: image
      value: registry.invalid/app:1.0.0
"""


def test_server_side_apply_and_status_subresource(control_plane: ControlPlane, namespace: str):
    manifest = PIPELINERUN.format(name="build-1", namespace=namespace)
    out = control_plane.kubectl("apply", "--server-side", "--field-manager=image-factory", "-f", "-",
                                input=manifest).stdout
    assert "serverside-applied" in out
    path = f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns/build-1"
    status, run = control_plane.request("GET", path)
    assert status == 200, run
    assert run["spec"]["pipelineRef"] == {"name": "build-image"}
    managers = {(m["manager"], m["operation"]) for m in run["metadata"]["managedFields"]}
    assert ("image-factory", "Apply") in managers

    # Play Tekton's controller: write status through the status subresource.
    started = {"status": {"startTime": _now(), "conditions": [
        {"type": "Succeeded", "status": "Unknown", "reason": "Running",
         "message": "Tasks Completed: 0 (Failed: 0, Cancelled 0), Incomplete: 1, Skipped: 0",
         "lastTransitionTime": _now()}]}}
    status, body = control_plane.request("PATCH", path + "/status", started,
                                         content_type="application/merge-patch+json")
    assert status == 200, body
    assert body["status"]["conditions"][0]["reason"] == "Running"
    # kubectl (a newer client) can do the same with --subresource
    done = {"status": {"completionTime": _now(), "conditions": [
        {"type": "Succeeded", "status": "True", "reason": "Succeeded",
         "message": "Tasks Completed: 1 (Failed: 0, Cancelled 0), Skipped: 0",
         "lastTransitionTime": _now()}]}}
    control_plane.kubectl("patch", "pipelinerun", "build-1", "-n", namespace, "--subresource=status",
                          "--type=merge", "-p", json.dumps(done))
    status, run = control_plane.request("GET", path)
    assert run["status"]["conditions"][0]["status"] == "True"
    generation = run["metadata"]["generation"]

    # Re-applying the same manifest changes nothing and keeps the status.
    control_plane.kubectl("apply", "--server-side", "--field-manager=image-factory", "-f", "-", input=manifest)
    status, again = control_plane.request("GET", path)
    assert again["metadata"]["generation"] == generation
    assert again["status"]["conditions"][0]["reason"] == "Succeeded"

    # Unchanged by a dry run too.
    control_plane.kubectl("apply", "--server-side", "--field-manager=image-factory", "--dry-run=server",
                          "-f", "-", input=manifest)
    assert control_plane.request("GET", path)[1]["metadata"]["resourceVersion"] == \
        again["metadata"]["resourceVersion"]

    # A write with a stale resourceVersion is a conflict.
    stale = dict(run, metadata=dict(run["metadata"], resourceVersion="1"))
    stale["metadata"].pop("managedFields")
    status, body = control_plane.request("PUT", path, stale)
    assert status == 409, body


def test_unknown_fields_are_pruned_silently(control_plane: ControlPlane, namespace: str):
    """1.20 has no fieldValidation=Strict: an unknown field vanishes without an error.

    And (a 1.20 quirk worth knowing) every re-apply of such a manifest bumps the generation,
    because the server compares before it prunes: a reconciler must not send unknown fields.
    (``--validate=false``: kubectl, newer than the server, would otherwise validate on the client
    side once the CRD's schema shows in /openapi/v2, a few seconds after it is Established.)
    """
    manifest = PIPELINERUN.format(name="pruned", namespace=namespace) + "  bogusField: dropped\n"
    path = f"/apis/tekton.dev/v1/namespaces/{namespace}/pipelineruns/pruned"
    generations = []
    for _ in range(2):
        control_plane.kubectl("apply", "--server-side", "--field-manager=image-factory", "--validate=false",
                              "-f", "-", input=manifest)
        status, run = control_plane.request("GET", path)
        assert status == 200, run
        assert "bogusField" not in run["spec"]
        assert run["spec"]["pipelineRef"] == {"name": "build-image"}
        generations.append(run["metadata"]["generation"])
    assert generations == [1, 2]


def test_static_token_users_have_no_rbac(control_plane: ControlPlane):
    for user, token in [(TESTER_USER, control_plane.tester_token),
                        (RECONCILER_USER, control_plane.reconciler_token)]:
        status, body = control_plane.request("GET", "/api/v1/namespaces/default/configmaps", token=token)
        assert status == 403, body
        assert f'User "{user}"' in body["message"]
    status, body = control_plane.request("GET", "/api/v1/namespaces", token="not-a-token")
    assert status == 401, body
    assert control_plane.kubectl("auth", "can-i", "list", "pods", context="tester", check=False).stdout.strip() == "no"


def test_minted_client_certificate_authenticates(control_plane: ControlPlane, tmp_path: Path):
    cert = control_plane.mint_client_cert("alice", ["image-factory:devs"])
    status, body = control_plane.request("GET", "/api/v1/namespaces/default/configmaps", client_cert=cert)
    assert status == 403, body
    assert 'User "alice"' in body["message"]

    # who the server says alice is, and that groups come from O
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
              "spec": {"resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "default"}}}
    status, body = control_plane.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                         review, client_cert=cert)
    assert status == 201, body
    assert body["status"]["allowed"] is False
    masters = control_plane.mint_client_cert("root", "system:masters")
    status, body = control_plane.request("GET", "/api/v1/namespaces/default/configmaps", client_cert=masters)
    assert status == 200, body

    # the same certificate through a kubeconfig, as the cluster layer will use it
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "alice.kubeconfig", client_cert=cert)
    proc = control_plane.kubectl("get", "configmaps", "-n", "default", kubeconfig=kubeconfig, check=False)
    assert proc.returncode != 0 and 'User "alice"' in proc.stderr


def test_certificate_from_another_ca_is_rejected(control_plane: ControlPlane, tmp_path: Path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mallory")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256()))
    pair = (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
    status, body = control_plane.request("GET", "/api/v1/namespaces", client_cert=pair)
    assert status == 401, body


def test_controller_manager_collects_garbage(control_plane: ControlPlane, namespace: str):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    status, owner = control_plane.request("POST", base, {"metadata": {"name": "owner"}, "data": {"a": "1"}})
    assert status == 201, owner
    dependent = {"metadata": {"name": "dependent", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]}}
    status, body = control_plane.request("POST", base, dependent)
    assert status == 201, body
    status, body = control_plane.request("DELETE", f"{base}/owner", {"propagationPolicy": "Background"})
    assert status == 200, body
    assert _wait_for(lambda: control_plane.request("GET", f"{base}/dependent")[0] == 404, timeout=60)


def test_own_control_plane_restart_watch_expiry_and_clean_stop(control_plane: ControlPlane, tmp_path: Path):
    """A second, private control plane (the session one stays untouched)."""
    cp = ControlPlane()
    t0 = time.monotonic()
    cp.start(tmp_path / "cp")
    try:
        print(f"start took {time.monotonic() - t0:.1f}s")
        assert cp.token != control_plane.token  # random per start
        assert set(cp.pids()) == {"etcd", "kube-apiserver", "kube-controller-manager", "watchdog"}
        base = "/api/v1/namespaces/default/configmaps"
        status, body = cp.request("POST", base, {"metadata": {"name": "c"}, "data": {"n": "0"}})
        assert status == 201, body
        old_rv = body["metadata"]["resourceVersion"]
        for n in range(1, 4):
            status, body = cp.request("PATCH", f"{base}/c", {"data": {"n": str(n)}},
                                      content_type="application/merge-patch+json")
            assert status == 200, body

        apiserver_pid = cp.pids()["kube-apiserver"]
        cp.stop_apiserver()
        assert not _running(apiserver_pid)
        assert "kube-apiserver" not in cp.pids()
        with pytest.raises(urllib.error.URLError):
            cp.request("GET", "/version", timeout=5)
        cp.compact_etcd()
        cp.start_apiserver()
        status, body = cp.request("GET", f"{base}/c")
        assert status == 200 and body["data"] == {"n": "3"}  # etcd kept the data

        # a watch from a compacted resourceVersion expires: 410 Gone (as status or ERROR event)
        status, body = cp.request("GET", f"{base}?watch=1&resourceVersion={old_rv}&timeoutSeconds=5")
        if status == 200:
            text = body if isinstance(body, str) else json.dumps(body)
            event = json.loads(text.splitlines()[0])
            assert event["type"] == "ERROR", event
            assert event["object"]["code"] == 410, event
        else:
            assert status == 410, body

        cp.restart_apiserver()
        assert cp.request("GET", "/readyz")[1] == "ok"
    finally:
        pids = cp.pids()
        port = int(cp.server.rsplit(":", 1)[1])
        t1 = time.monotonic()
        cp.stop()
        print(f"stop took {time.monotonic() - t1:.1f}s")
    assert pids and not [name for name, pid in pids.items() if _running(pid)]
    assert cp.pids() == {}
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    cp.stop()  # a second stop is harmless
