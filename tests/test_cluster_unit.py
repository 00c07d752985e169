"""The cluster layer without a cluster: comparing, pruning rules, run states, errors and
scrubbing, kubeconfigs, exec plugins, the token bucket, transport retries against a local
HTTP server, and building connections for every auth method."""

from __future__ import annotations

import base64
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from reconciler.cluster import (APPLIED_HASH_ANNOTATION, ClusterSettings, ClusterUnavailable, ConnectFailed,
                                ConnectionPool, Forbidden, Invalid, Unauthorized, compare, connect, plan_prune,
                                prune_objects, run_state, unified_diff)
from reconciler.cluster.comparing import applied_hash, pruned_fields, with_applied_hash
from reconciler.cluster.errors import ConnectUnavailable, error_for_status, scrub
from reconciler.cluster.exec_plugins import ExecConfig, ExecRunner, ExecToken, cloud_plugin
from reconciler.cluster.kubeconfigs import load_kubeconfig
from reconciler.cluster.objects import key_of
from reconciler.cluster.observing import Observed
from reconciler.cluster.transport import StaticToken, TokenBucket, Transport
from reconciler.errors import SealingError, TerminalError, TransientError

from .test_cluster_support import EXEC_PLUGINS, job, labels, namespace, pipeline_run, spec

NOW = 1_800_000_000.0


def _live(obj, *, owned=None, manager="image-factory", **changes):
    """``obj`` as the server would return it after we applied it."""
    live = json.loads(json.dumps(with_applied_hash(obj)))
    live["metadata"].update(uid="u-" + live["metadata"]["name"], resourceVersion="1",
                            creationTimestamp="2026-01-01T00:00:00Z")
    if owned is not None:
        live["metadata"]["managedFields"] = [{"manager": manager, "operation": "Apply", "fieldsType": "FieldsV1",
                                              "fieldsV1": owned}]
    for path, value in changes.items():
        node = live
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return live


# -- comparing ------------------------------------------------------------------------------------

def test_absent_is_create_and_identical_is_unchanged():
    pr = pipeline_run("ns", "a", "web.app")
    assert compare(pr, None).action == "create"
    assert compare(pr, _live(pr)).action == "unchanged"


def test_desired_edit_and_field_removal_are_updates():
    pr = pipeline_run("ns", "a", "web.app", status="PipelineRunPending")
    live = _live(pr)
    edited = pipeline_run("ns", "a", "web.app", image="registry.example.com/web/app:2", status="PipelineRunPending")
    assert compare(edited, live).action == "update"
    removed = pipeline_run("ns", "a", "web.app")  # spec.status no longer wanted: containment alone misses it
    verdict = compare(removed, live)
    assert verdict.action == "update" and verdict.why == "the desired object changed"


def test_revision_annotation_alone_is_not_a_change():
    live = _live(pipeline_run("ns", "a", "web.app", revision="aaa"))
    assert compare(pipeline_run("ns", "a", "web.app", revision="bbb"), live).action == "unchanged"


def test_server_defaults_and_other_managers_extra_fields_are_not_changes():
    pr = pipeline_run("ns", "a", "web.app")
    live = _live(pr)
    live["spec"]["timeouts"]["tasks"] = "30m"  # a default, or another manager's field
    live["metadata"]["labels"]["other"] = "x"
    live["status"] = {"conditions": [{"type": "Succeeded", "status": "Unknown"}]}
    assert compare(pr, live).action == "unchanged"


def test_normalised_value_we_own_is_not_drift_but_foreign_change_is():
    j = job("ns", "j", "web.app")
    owned = {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"kaniko"}': {".": {}, "f:name": {}, "f:resources": {"f:requests": {"f:memory": {}, "f:cpu": {}}}}}}}}}
    live = _live(j, owned=owned)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1Gi"  # the server's form
    assert compare(j, live).action == "unchanged"
    # someone else changed it: ownership moved away from us
    owned_elsewhere = json.loads(json.dumps(owned))
    del owned_elsewhere["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"kaniko"}']["f:resources"]
    live = _live(j, owned=owned_elsewhere)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "2Gi"
    verdict = compare(j, live)
    assert verdict.action == "update" and "resources" in verdict.why and "someone else" in verdict.why


def test_drift_without_managed_fields_compares_values():
    pr = pipeline_run("ns", "a", "web.app")
    live = _live(pr, spec__params=[{"name": "image", "value": "evil/image:1"}, {"name": "context", "value": "."}])
    verdict = compare(pr, live)
    assert verdict.action == "update" and verdict.drift == ("spec.params",)


def test_server_pruned_field_is_reported_not_resent():
    pr = pipeline_run("ns", "a", "web.app", bogus={"x": 1})
    live = _live(pr)
    del live["spec"]["bogus"]
    verdict = compare(pr, live)
    assert verdict.action == "unchanged" and verdict.missing == ("spec.bogus",)
    assert pruned_fields(pr, live) == ("spec.bogus",)
    # zero values are omitted by built-in types: not a loss
    assert pruned_fields({"kind": "X", "spec": {"a": [], "b": False, "c": {}}}, {"kind": "X", "spec": {}}) == ()


def test_applied_hash_ignores_volatile_annotations_and_itself():
    a = pipeline_run("ns", "a", "web.app", revision="aaa")
    b = pipeline_run("ns", "a", "web.app", revision="bbb")
    assert applied_hash(a) == applied_hash(b) == applied_hash(with_applied_hash(a))
    assert with_applied_hash(a)["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] == applied_hash(a)
    assert APPLIED_HASH_ANNOTATION not in a["metadata"]["annotations"]  # the input is not modified


def test_unified_diff_is_normalised_and_masks_secrets():
    before = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ns", "uid": "u",
                                                                "managedFields": [{}], "labels": labels("b")},
              "data": {"same": "c2FtZQ==", "key": "b2xkLXNlY3JldA=="}}
    after = {**before, "data": {"same": "c2FtZQ==", "key": "bmV3LXNlY3JldA=="}}
    text = unified_diff(key_of(after), before, after, "c1")
    assert "b2xk" not in text and "bmV3" not in text and "c2FtZQ" not in text
    assert "-  key: '*** (before)'" in text and "+  key: '*** (after)'" in text and "uid" not in text
    assert "managedFields" not in text and text.startswith("--- live/c1/ns/Secret/s")


# -- runs and pruning -----------------------------------------------------------------------------

def _with_status(obj, status, spec_status=None):
    out = json.loads(json.dumps(_live(obj)))
    out["status"] = status
    if spec_status:
        out["spec"]["status"] = spec_status
    return out


def _succeeded(obj, at="2026-01-01T10:00:00Z", ok="True", reason="Succeeded"):
    return _with_status(obj, {"conditions": [{"type": "Succeeded", "status": ok, "reason": reason,
                                              "lastTransitionTime": at}], "completionTime": at})


def test_run_states():
    pr = pipeline_run("ns", "a", "b")
    assert run_state(pr).phase == "Pending"
    assert run_state(_with_status(pr, {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running"}]})).phase == "Running"
    assert run_state(_succeeded(pr)).phase == "Succeeded"
    assert run_state(_succeeded(pr, ok="False", reason="Failed")).phase == "Failed"
    assert run_state(_succeeded(pr, ok="False", reason="Cancelled")).phase == "Cancelled"
    running = _with_status(pr, {"conditions": [{"type": "Succeeded", "status": "Unknown"}]}, "Cancelled")
    assert run_state(running).cancel_requested and not run_state(running).finished
    j = job("ns", "j", "b")
    assert run_state(_with_status(j, {"active": 1})).phase == "Running"
    done = run_state(_with_status(j, {"conditions": [{"type": "Complete", "status": "True"}],
                                      "completionTime": "2026-01-01T10:00:00Z"}))
    assert done.phase == "Succeeded" and done.finished_at == "2026-01-01T10:00:00Z"
    assert run_state(_with_status(j, {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]})).phase == "Failed"
    assert run_state(namespace("x")) is None


def _observed(*objects):
    return Observed("c1", {key_of(o): o for o in objects})


def test_prune_rules():
    ns = "if-web"
    keep = pipeline_run(ns, "keep", "web.keep")
    running = _with_status(pipeline_run(ns, "gone-run", "web.gone"), {"conditions": [{"type": "Succeeded", "status": "Unknown"}]})
    old = _succeeded(pipeline_run(ns, "gone-old", "web.old"), at="2026-01-01T00:00:00Z")
    fresh = _succeeded(pipeline_run(ns, "gone-fresh", "web.fresh"), at="2027-01-01T00:00:00Z")
    sa_busy = _live({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa1", "namespace": ns, "labels": labels("web.gone")}})
    sa_free = _live({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa2", "namespace": ns, "labels": labels("web.old")}})
    foreign = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": ns, "labels": {"imagefactory.dev/build": "web.old"}}}
    nslive = _live(namespace("if-old"))
    child = _live({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "child", "namespace": ns, "labels": labels("web.old"),
                                                                      "ownerReferences": [{"kind": "CronJob", "name": "cj", "controller": True}]}})
    running_job = _with_status(job(ns, "gone-job", "web.job"), {"active": 1})
    observed = _observed(_live(keep), running, old, fresh, sa_busy, sa_free, foreign, nslive, child, running_job)
    now = 1_790_000_000.0  # 2026-09: 'old' finished long ago, 'fresh' in the future
    steps = {str(key_of(s.obj)): (s.do, s.reason) for s in plan_prune([keep], observed, retention=86400, now=now)}
    assert steps["PipelineRun if-web/gone-run"][0] == "cancel"
    assert steps["PipelineRun if-web/gone-old"][0] == "delete"
    assert steps["PipelineRun if-web/gone-fresh"][0] == "keep" and "kept until" in steps["PipelineRun if-web/gone-fresh"][1]
    assert steps["ServiceAccount if-web/sa1"][0] == "keep"  # its build's run is still stopping
    assert steps["ServiceAccount if-web/sa2"][0] == "delete"
    assert steps["Namespace if-old"][0] == "keep"
    assert steps["Job if-web/child"][0] == "keep"
    assert steps["Job if-web/gone-job"][0] == "delete"
    assert "ConfigMap if-web/theirs" not in steps and "PipelineRun if-web/keep" not in steps


def test_prune_nothing_when_source_failed_or_desired_empty():
    conn = SimpleNamespace(provider="c1", settings=ClusterSettings(), stats={})
    gone = _live(pipeline_run("ns", "gone", "web.gone"))
    report = prune_objects(conn, [], _observed(gone))
    assert report.results == [] and "empty" in report.skipped
    report = prune_objects(conn, [pipeline_run("ns", "x", "b")], _observed(gone), source_ok=False)
    assert report.results == [] and "did not load" in report.skipped


# -- errors and scrubbing -------------------------------------------------------------------------

def test_errors_by_status_are_transient_or_terminal():
    e = error_for_status(429, b"", what="GET x", provider="p", retry_after=3)
    assert isinstance(e, ClusterUnavailable) and isinstance(e, TransientError) and e.retry_after == 3
    assert isinstance(error_for_status(503, None, what="x", provider="p"), TransientError)
    assert isinstance(error_for_status(403, None, what="x", provider="p"), Forbidden)
    e = error_for_status(422, json.dumps({"kind": "Status", "reason": "Invalid", "message": "spec.x: " + "y" * 5000,
                                          "details": {"causes": [{"field": "spec.x", "message": "bad"}]}}).encode(),
                         what="apply x", provider="p")
    assert isinstance(e, Invalid) and isinstance(e, TerminalError) and len(str(e)) < 600
    assert e.causes[0]["field"] == "spec.x"


def test_scrub_removes_credentials():
    text = scrub('Authorization: Bearer abc.def token="s3cr3t-value" eyJhbGciOiJ.eyJzdWIiOiJ4.sig '
                 '-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- the-known-secret',
                 ["the-known-secret"])
    for leaked in ("abc.def", "s3cr3t", "eyJhbGciOiJ", "MIIE", "the-known-secret"):
        assert leaked not in text


# -- kubeconfigs -----------------------------------------------------------------------------------

def _kubeconfig(tmp_path, user, **cluster):
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "one",
              "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443", **cluster}}],
              "users": [{"name": "u", "user": user}],
              "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u"}},
                           {"name": "two", "context": {"cluster": "c", "user": "u"}}]}
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(config))
    return path


def test_kubeconfig_contexts_data_and_files(tmp_path):
    (tmp_path / "ca.pem").write_bytes(b"CA")
    path = _kubeconfig(tmp_path, {"client-certificate-data": base64.b64encode(b"CERT").decode(),
                                  "client-key": "key.pem"}, **{"certificate-authority": "ca.pem"})
    (tmp_path / "key.pem").write_bytes(b"KEY")
    target = load_kubeconfig(path=str(path), context="two")
    assert (target.server, target.ca_pem, target.client_cert, target.context) == \
        ("https://127.0.0.1:6443", b"CA", (b"CERT", b"KEY"), "two")
    assert "KEY" not in repr(target)
    with pytest.raises(ConnectFailed, match="context 'three' not found .have: one, two"):
        load_kubeconfig(path=str(path), context="three")


def test_kubeconfig_refuses_legacy_auth_provider_and_never_quotes_content(tmp_path):
    path = _kubeconfig(tmp_path, {"auth-provider": {"name": "gcp", "config": {"access-token": "ya29.secret"}}})
    with pytest.raises(ConnectFailed, match="auth-provider 'gcp' is not supported") as err:
        load_kubeconfig(path=str(path))
    assert "ya29" not in str(err.value)
    with pytest.raises(ConnectFailed, match="not valid YAML") as err:
        load_kubeconfig(content=b"token: [unclosed s3cr3t")
    assert "s3cr3t" not in str(err.value)


# -- exec plugins ----------------------------------------------------------------------------------

@pytest.fixture
def stub_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", f"{EXEC_PLUGINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_LOG", str(tmp_path / "stub.log"))
    monkeypatch.setenv("STUB_TOKEN", "stub-token-123456")
    return tmp_path / "stub.log"


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cloud_plugin_command_lines():
    from reconciler.models.provider import AwsIamAuth, AzureManagedIdentityAuth, GcpWorkloadIdentityAuth, OciInstancePrincipalAuth
    eks = cloud_plugin("aws-iam", AwsIamAuth(method="aws-iam", clusterName="prod",
                                             roleArn="arn:aws:iam::123456789012:role/factory"), "eu-west-1")
    assert (eks.command, eks.args) == ("aws", ("eks", "get-token", "--cluster-name", "prod", "--role-arn",
                                               "arn:aws:iam::123456789012:role/factory", "--region", "eu-west-1",
                                               "--output", "json"))
    gke = cloud_plugin("gcp-workload-identity", GcpWorkloadIdentityAuth(method="gcp-workload-identity", project="my-project",
                                                                       location="europe-west1", clusterName="c1"))
    assert gke.command == "gke-gcloud-auth-plugin" and gke.args == ()
    aks = cloud_plugin("azure-managed-identity", AzureManagedIdentityAuth(
        method="azure-managed-identity", loginMode="workloadidentity", clientId="0" * 8 + "-0000-0000-0000-" + "0" * 12,
        tenantId="1" * 8 + "-1111-1111-1111-" + "1" * 12))
    assert aks.args[:5] == ("get-token", "--login", "workloadidentity", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630")
    assert "--client-id" in aks.args and "--tenant-id" in aks.args
    msi = cloud_plugin("azure-managed-identity", AzureManagedIdentityAuth(method="azure-managed-identity"))
    assert msi.args == ("get-token", "--login", "msi", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630")
    oke = cloud_plugin("oci-instance-principal", OciInstancePrincipalAuth(method="oci-instance-principal",
                                                                         clusterId="ocid1.cluster.oc1.abc", region="eu-frankfurt-1"))
    assert oke.args == ("ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1.abc", "--region",
                        "eu-frankfurt-1", "--auth", "instance_principal")


def test_exec_token_cached_until_expiry_and_refreshed(stub_path, monkeypatch):
    monkeypatch.setenv("STUB_EXPIRY", "3600")
    runner = ExecRunner(ExecConfig("aws", ("eks", "get-token")))
    token = ExecToken(runner)
    assert token.token() == token.token() == "stub-token-123456"
    assert len(_log(stub_path)) == 1  # cached
    token.refresh()
    token.token()
    assert len(_log(stub_path)) == 2
    monkeypatch.setenv("STUB_EXPIRY", "30")  # within the skew: every use re-runs it
    token.refresh()
    token.token()
    token.token()
    assert len(_log(stub_path)) == 4
    assert _log(stub_path)[0]["exec_info"]["apiVersion"] == "client.authentication.k8s.io/v1beta1"


def test_exec_failures_are_clear_and_scrubbed(stub_path, monkeypatch):
    monkeypatch.setenv("STUB_MODE", "fail")
    with pytest.raises(ConnectFailed, match=r"exec plugin 'aws' failed \(exit 1\)") as err:
        ExecRunner(ExecConfig("aws")).run()
    assert "k8s-aws-v1.c2Vj" not in str(err.value)
    monkeypatch.setenv("STUB_MODE", "garbage")
    with pytest.raises(ConnectFailed, match="did not print JSON"):
        ExecRunner(ExecConfig("aws")).run()
    monkeypatch.setenv("STUB_MODE", "sleep")
    with pytest.raises(ConnectUnavailable, match="did not answer within 0.5s"):
        ExecRunner(ExecConfig("aws"), timeout=0.5).run()
    with pytest.raises(ConnectFailed, match="'no-such-plugin' was not found on PATH; install it"):
        ExecRunner(ExecConfig("no-such-plugin", install_hint="install it")).run()
    monkeypatch.setenv("STUB_MODE", "token")
    monkeypatch.setenv("STUB_API_VERSION", "v1")
    with pytest.raises(ConnectFailed, match="apiVersion 'v1'"):
        ExecRunner(ExecConfig("aws")).run()


def test_sealed_kubeconfig_for_an_exec_plugin_lives_in_a_private_dir_only_while_it_runs(stub_path):
    runner = ExecRunner(ExecConfig("kubelogin"), kubeconfig=b"apiVersion: v1\nkind: Config\n")
    runner.run()
    seen = _log(stub_path)[0]["kubeconfig"]
    assert seen["exists"] and seen["dir_mode"] == "0o700"
    assert not Path(seen["path"]).exists() and not Path(seen["path"]).parent.exists()


# -- transport ----------------------------------------------------------------------------------------

class _Scripted(BaseHTTPRequestHandler):
    script: list = []
    seen: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        type(self).seen.append((self.path, self.headers.get("Authorization")))
        status, headers, body = type(self).script.pop(0) if type(self).script else (200, {}, b'{"ok": true}')
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PATCH = do_GET


@pytest.fixture
def scripted():
    handler = type("H", (_Scripted,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


FAST = ClusterSettings(backoff_base=0.01, backoff_max=0.05, retries=3)


def test_transport_retries_5xx_and_honours_retry_after(scripted):
    handler, url = scripted
    sleeps: list[float] = []
    t = Transport(url, settings=FAST, provider="p", token=StaticToken("tok-abcdef"), sleep=sleeps.append)
    handler.script += [(500, {}, b"oops"), (429, {"Retry-After": "2"}, b""), (200, {}, b'{"a": 1}')]
    assert t.get_json("/x") == {"a": 1}
    assert t.stats["GET"] == 3 and t.stats["retries"] == 2 and t.stats["writes"] == 0
    assert sleeps[1] >= 0.05  # Retry-After honoured, capped at backoff_max
    assert handler.seen[0][1] == "Bearer tok-abcdef"
    handler.script += [(503, {}, b"")] * 4
    with pytest.raises(ClusterUnavailable, match="HTTP 503.*after 4 attempts"):
        t.get_json("/y")


def test_transport_terminal_errors_are_not_retried_and_never_leak(scripted):
    handler, url = scripted
    t = Transport(url, settings=FAST, provider="p", token=StaticToken("tok-abcdef-secret"), sleep=lambda s: None)
    handler.script += [(403, {}, json.dumps({"kind": "Status", "reason": "Forbidden",
                                             "message": "user cannot list; token tok-abcdef-secret"}).encode())]
    with pytest.raises(Forbidden) as err:
        t.get_json("/z")
    assert "tok-abcdef-secret" not in str(err.value) and t.stats["GET"] == 1
    handler.script += [(401, {}, b""), (401, {}, b"")]
    with pytest.raises(Unauthorized):
        t.get_json("/w")  # a static token cannot refresh: one attempt


def test_transport_unreachable_is_transient():
    t = Transport("https://127.0.0.1:9", settings=FAST, provider="p", sleep=lambda s: None)
    with pytest.raises(ClusterUnavailable, match="unreachable .connection refused.") as err:
        t.get_json("/version")
    assert t.stats["GET"] == 4 and err.value.transient


def test_token_bucket_limits_rate():
    clock = [0.0]
    slept: list[float] = []

    def sleep(s):
        slept.append(s)
        clock[0] += s

    bucket = TokenBucket(qps=10, burst=3, clock=lambda: clock[0], sleep=sleep)
    for _ in range(5):
        bucket.acquire()
    assert slept == pytest.approx([0.1, 0.1])
    assert TokenBucket(qps=0, burst=1).acquire() == 0.0


# -- connections ----------------------------------------------------------------------------------------

def _creds(**values):
    return lambda field: values.get(field)


def test_connect_builds_each_method_and_names_missing_credentials(tmp_path, stub_path):
    sealed = "sealed:v1:abc"
    token = spec(type="vks", endpoint="https://api.example.com:6443", auth={"method": "api-token"},
                 credentials={"token": sealed})
    conn = connect("vks", token, _creds(token=b"tok-123456"))
    assert conn.server == "https://api.example.com:6443" and conn.method == "api-token"
    assert "tok-123456" in conn.transport.secrets()
    with pytest.raises(ConnectFailed, match="vks: auth method api-token needs credentials.token"):
        connect("vks", token, _creds())

    def broken(field):
        raise SealingError("credentials.token was sealed for another provider")
    with pytest.raises(ConnectFailed, match="credentials.token could not be opened: credentials.token was sealed"):
        connect("vks", token, broken)
    with pytest.raises(ConnectFailed, match="only inside a pod"):
        connect("x", spec(auth={"method": "in-cluster"}), environ={})
    sa_dir = tmp_path / "sa"
    sa_dir.mkdir()
    (sa_dir / "token").write_text("sa-token-abcdef\n")
    conn = connect("x", spec(auth={"method": "in-cluster"}), in_cluster_dir=str(sa_dir),
                   environ={"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"})
    assert conn.server == "https://10.0.0.1:443"
    eks = spec(type="eks", endpoint="https://eks.example.com", region="eu-west-1",
               auth={"method": "aws-iam", "clusterName": "prod"})
    conn = connect("eks", eks, _creds())
    assert conn.transport._token.token() == "stub-token-123456"
    assert _log(stub_path)[-1]["args"][:4] == ["eks", "get-token", "--cluster-name", "prod"]


def test_azure_client_secret_goes_through_the_environment_only(stub_path):
    aks = spec(type="aks", endpoint="https://aks.example.com", credentials={"clientSecret": "sealed:v1:x"},
               auth={"method": "azure-managed-identity", "clientId": "0" * 8 + "-0000-0000-0000-" + "0" * 12,
                     "tenantId": "1" * 8 + "-1111-1111-1111-" + "1" * 12})
    connect("aks", aks, _creds(clientSecret=b"azure-secret-value"))
    seen = _log(stub_path)[-1]
    assert seen["args"][:3] == ["get-token", "--login", "spn"] and "azure-secret-value" not in json.dumps(seen)
    assert "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET" in seen["env"]


def test_pool_reuses_expires_idle_and_rebuilds_on_spec_change():
    clock = [0.0]
    made = []

    def connector(name, spec_, credentials, settings):
        conn = SimpleNamespace(fingerprint="", clock=None, last_used=0.0, settings=settings, closed=False,
                               expired=lambda: False)
        conn.close = lambda: setattr(conn, "closed", True)
        made.append(conn)
        return conn

    pool = ConnectionPool(ClusterSettings(idle_expiry=60), connector=connector, clock=lambda: clock[0])
    a = spec(type="vks", endpoint="https://a.example.com", auth={"method": "api-token"}, credentials={"token": "sealed:v1:a"})
    b = spec(type="vks", endpoint="https://a.example.com", auth={"method": "api-token"}, credentials={"token": "sealed:v1:b"})
    first = pool.get("p", a)
    assert pool.get("p", a) is first and pool.connects == 1
    assert pool.get("p", b) is not first and first.closed  # credentials were re-sealed
    clock[0] = 61
    assert pool.expire_idle() == ["p"] and made[1].closed and pool.names() == []
    pool.get("p", b)
    assert pool.connects == 3


def test_client_key_touches_disk_only_in_a_private_dir_removed_at_once(monkeypatch):
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import datetime

    from reconciler.cluster import transport

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pems = (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    made = []
    real = tempfile.mkdtemp

    def recording(*args, **kwargs):
        path = real(*args, **kwargs)
        made.append((path, oct(os.stat(path).st_mode & 0o777)))
        return path

    monkeypatch.setattr(transport.tempfile, "mkdtemp", recording)
    transport.ssl_context(ca_pem=None, client_cert=pems)
    assert len(made) == 1 and made[0][1] == "0o700" and not os.path.exists(made[0][0])


def test_a_scoped_pass_prunes_only_inside_its_namespaces():
    ours = _live(pipeline_run("mine", "old", "web.old"))
    elsewhere = _live(pipeline_run("theirs", "old", "web.old"))
    other_ns = _live(namespace("theirs"))
    observed = Observed("c1", {key_of(o): o for o in (ours, elsewhere, other_ns)}, scope=frozenset({"mine"}))
    steps = plan_prune([namespace("mine")], observed, retention=0, now=NOW)
    assert [str(key_of(s.obj)) for s in steps] == ["PipelineRun mine/old"]
