"""deploy/: the manifests' properties, a server-side dry-run on the real control plane, and
whether the ClusterRole is enough (and no more) for what the reconciler does, checked with the
service account's own token.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from reconciler.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
NS = "image-factory"
SA = "image-factory"


def manifests(folder: Path = DEPLOY) -> dict[str, list[dict]]:
    return {p.name: [d for d in yaml.safe_load_all(p.read_text()) if d] for p in sorted(folder.glob("*.yaml"))}


def objects(folder: Path = DEPLOY) -> list[dict]:
    return [d for docs in manifests(folder).values() for d in docs]


def one(kind: str, name: str | None = None) -> dict:
    found = [o for o in objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


# -- static properties ---------------------------------------------------------------------------

def test_every_manifest_parses_and_the_kustomization_lists_them_all():
    kustomization = yaml.safe_load((DEPLOY / "Kustomization").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(manifests())
    assert not (DEPLOY / "kustomization.yaml").exists()  # it would break `kubectl apply -f deploy/`
    kinds = {o["kind"] for o in objects()}
    assert {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
            "Deployment", "Service", "NetworkPolicy", "ConfigMap"} <= kinds
    for obj in objects():
        if obj["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NS, obj["metadata"]["name"]


def test_the_namespace_comes_first_in_file_order():
    assert next(iter(manifests())) == "00-namespace.yaml"
    assert [o["kind"] for o in manifests()["00-namespace.yaml"]] == ["Namespace"]


def test_deployment_security_probes_and_resources():
    deploy = one("Deployment", "image-factory")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == SA
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    # writable: only emptyDirs (the work directory and /tmp); secrets read-only
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume or mount.get("readOnly") is True, mount
    writable = {m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]}
    assert writable == {"/var/lib/image-factory", "/tmp"}
    assert container["ports"][0]["containerPort"] == 8080
    assert pod["terminationGracePeriodSeconds"] > 25  # run's default --shutdown-timeout


def test_deployment_args_are_accepted_by_the_real_cli():
    deploy = one("Deployment", "image-factory")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    config = one("ConfigMap", "image-factory-config")["data"]
    env_from_config = {e["name"]: config[e["valueFrom"]["configMapKeyRef"]["key"]]
                       for e in container["env"] if "configMapKeyRef" in e.get("valueFrom", {})}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env_from_config[m.group(1)], a) for a in container["args"]]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "run" and parsed.leader_elect and parsed.lease_name == "image-factory"
    assert parsed.listen == ("0.0.0.0", 8080) and parsed.log_format == "json"
    assert parsed.poll_interval == 60.0 and parsed.repo.startswith("https://")
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert env["IMAGE_FACTORY_WEBHOOK_SECRET_FILE"]["value"].startswith("/etc/image-factory/")
    for name, item in env.items():  # credentials only as files
        assert not ("TOKEN" in name and "value" in item and not name.endswith("_FILE")), name


def test_service_and_network_policy_select_the_pods():
    pod_labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one("Service", "image-factory")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    policy = one("NetworkPolicy", "image-factory")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress_ports = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert ingress_ports == ["http"]


def test_cluster_role_is_least_privilege():
    role = one("ClusterRole", "image-factory")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"escalate", "impersonate", "update", "deletecollection"} & set(rule["verbs"]), rule
        if "bind" in rule["verbs"]:  # only on named ClusterRoles, and nothing else in that rule
            assert rule["verbs"] == ["bind"] and rule["resources"] == ["clusterroles"], rule
            assert rule["resourceNames"] == ["system:openshift:scc:anyuid"], rule
        assert "pods/exec" not in rule["resources"]
        if "namespaces" in rule["resources"]:
            assert "delete" not in rule["verbs"]
        if "secrets" in rule["resources"]:
            assert "watch" not in rule["verbs"]
        assert "leases" not in rule["resources"], "leases belong in the namespaced Role"
    binding = one("ClusterRoleBinding", "image-factory")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": SA, "namespace": NS}]
    lease_role = one("Role", "image-factory-leader-election")
    verbs = {v for r in lease_role["rules"] for v in r["verbs"]}
    assert verbs == {"get", "create", "update"}
    named = [r for r in lease_role["rules"] if "get" in r["verbs"]]
    assert named[0]["resourceNames"] == ["image-factory"]


def test_secret_templates_hold_no_real_values_and_are_not_applied_by_default():
    templates = objects(DEPLOY / "templates")
    assert {o["metadata"]["name"] for o in templates} == {"image-factory-git", "image-factory-sealing-key"}
    for secret in templates:
        assert secret["kind"] == "Secret"
        for key, value in secret["stringData"].items():
            assert "REPLACE" in key or "REPLACE" in value, key
    assert all(o["kind"] != "Secret" for o in objects())  # `apply -f deploy/` never touches Secrets
    mounted = {v["secret"]["secretName"] for v in one("Deployment")["spec"]["template"]["spec"]["volumes"]
               if "secret" in v}
    assert mounted == {"image-factory-git", "image-factory-sealing-key"}
    from reconciler.commands.keygen import SECRET_NAME
    assert SECRET_NAME in mounted  # the name `image-factory keygen --k8s-secret` writes


# -- the real control plane ------------------------------------------------------------------------

def _ensure_namespace(cp) -> None:
    cp.kubectl("apply", "--server-side", "-f", str(DEPLOY / "00-namespace.yaml"))


def test_deploy_applies_with_a_server_side_dry_run(control_plane):
    _ensure_namespace(control_plane)  # install order: the Namespace first (a dry run creates nothing)
    for args in (["-f", str(DEPLOY)], ["-k", str(DEPLOY)], ["-f", str(DEPLOY / "templates")]):
        proc = control_plane.kubectl("apply", "--server-side", "--dry-run=server", *args)
        assert "(server dry run)" in proc.stdout
        assert proc.stderr.strip() == "", proc.stderr
    out = control_plane.kubectl("apply", "--server-side", "--dry-run=server", "-f", str(DEPLOY)).stdout
    for obj in objects():
        assert f"{obj['metadata']['name']} serverside-applied" in out


# -- the service account's permissions --------------------------------------------------------------

@pytest.fixture(scope="module")
def sa_token(control_plane) -> str:
    """Apply the real ServiceAccount and RBAC, and get a token for the SA (TokenRequest API)."""
    _ensure_namespace(control_plane)
    for name in ("01-serviceaccount.yaml", "02-clusterrole.yaml", "03-role-leases.yaml"):
        control_plane.kubectl("apply", "--server-side", "-f", str(DEPLOY / name))
    status, body = control_plane.request(
        "POST", f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}})
    assert status == 201, body
    return body["status"]["token"]


def can(cp, token: str, verb: str, group: str, resource: str, namespace: str | None = None,
        name: str | None = None, subresource: str | None = None) -> bool:
    attrs = {"verb": verb, "group": group, "resource": resource}
    if namespace:
        attrs["namespace"] = namespace
    if name:
        attrs["name"] = name
    if subresource:
        attrs["subresource"] = subresource
    status, body = cp.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                              {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                               "spec": {"resourceAttributes": attrs}}, token=token)
    assert status == 201, body
    return bool(body["status"]["allowed"])


def _resources(cp) -> dict[tuple[str, str], tuple[str, str, bool]]:
    """(apiVersion, kind) -> (group, plural, namespaced), from the control plane's discovery."""
    out = {}
    _, groups = cp.request("GET", "/apis")
    versions = ["v1"] + [v["groupVersion"] for g in groups["groups"] for v in g["versions"]]
    for gv in versions:
        status, body = cp.request("GET", "/api/v1" if gv == "v1" else f"/apis/{gv}")
        if status != 200:
            continue
        group = "" if gv == "v1" else gv.split("/")[0]
        for r in body["resources"]:
            if "/" not in r["name"]:
                out[(gv, r["kind"])] = (group, r["name"], r["namespaced"])
    return out


# Kinds the reconciler observes but never writes (another controller owns them, or nothing renders them).
READ_ONLY_KINDS = {("rbac.authorization.k8s.io/v1", "ClusterRole"), ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
                   ("buildkit.smrt-devops.net/v1alpha1", "BuildKitWorker")}


def test_service_account_may_do_what_the_reconciler_does(control_plane, sa_token):
    from reconciler.cluster.observing import MANAGED_KINDS

    resources = _resources(control_plane)
    missing = []

    def check(verb, group, resource, namespace=None, **kw):
        if not can(control_plane, sa_token, verb, group, resource, namespace, **kw):
            missing.append(f"{verb} {resource}.{group or 'core'}" + (f" in {namespace}" if namespace else ""))

    for api_version, kind in MANAGED_KINDS:
        assert (api_version, kind) in resources, f"{api_version} {kind} is not served by the control plane"
        group, plural, namespaced = resources[(api_version, kind)]
        ns = "team-web" if namespaced else None
        for verb in ("get", "list"):
            check(verb, group, plural, ns)
            if namespaced:
                check(verb, group, plural)  # observe lists across namespaces
        if (api_version, kind) in READ_ONLY_KINDS:
            continue
        for verb in ("create", "patch"):  # server-side apply (a PATCH that may create)
            check(verb, group, plural, ns)
        if kind != "Namespace":
            check("delete", group, plural, ns)  # prune
    # watches on runs (status follows the cluster), health checks, Tekton's TaskRuns, build pods
    for group, plural in (("tekton.dev", "pipelineruns"), ("batch", "jobs"), ("tekton.dev", "taskruns"),
                          ("", "pods")):
        check("watch", group, plural)
    check("list", "", "nodes")
    check("get", "apiextensions.k8s.io", "customresourcedefinitions")
    check("get", "", "pods", "team-web", subresource="log")
    # leader election in its own namespace
    check("bind", "rbac.authorization.k8s.io", "clusterroles", name="system:openshift:scc:anyuid")  # OpenShift tenancy
    check("create", "coordination.k8s.io", "leases", NS)
    for verb in ("get", "update"):
        check(verb, "coordination.k8s.io", "leases", NS, name="image-factory")
    assert not missing, "the ClusterRole/Role lacks: " + ", ".join(missing)


def test_service_account_may_not_do_more(control_plane, sa_token):
    forbidden = [
        ("delete", "", "namespaces", None),
        ("update", "rbac.authorization.k8s.io", "clusterroles", None),
        ("create", "rbac.authorization.k8s.io", "clusterrolebindings", None),
        ("escalate", "rbac.authorization.k8s.io", "roles", "team-web"),
        ("bind", "rbac.authorization.k8s.io", "clusterroles", None),  # any but the anyuid SCC role
        ("impersonate", "", "users", None),
        ("watch", "", "secrets", None),
        ("deletecollection", "tekton.dev", "pipelineruns", "team-web"),
        ("create", "", "pods", "team-web"),
        ("update", "coordination.k8s.io", "leases", "kube-system"),
        ("get", "coordination.k8s.io", "leases", NS),  # other leases than its own
        ("create", "coordination.k8s.io", "leases", "default"),
    ]
    allowed = [f for f in forbidden if can(control_plane, sa_token, f[0], f[1], f[2], f[3])]
    assert not allowed, f"the service account may: {allowed}"
    assert not can(control_plane, sa_token, "create", "", "pods", "team-web", subresource="exec")
    assert not can(control_plane, sa_token, "bind", "rbac.authorization.k8s.io", "clusterroles", name="cluster-admin")


def _apply_as(cp, token: str, path: str, obj: dict) -> tuple[int, dict]:
    return cp.request("PATCH", f"{path}?fieldManager=image-factory&force=true", json.dumps(obj).encode(),
                      token=token, content_type="application/apply-patch+yaml")


def test_service_account_applies_team_objects_and_rbac_within_escalation_rules(control_plane, sa_token):
    team = f"if-deploytest-{int(time.time()) % 100000}"
    labels = {"app.kubernetes.io/managed-by": "image-factory"}
    status, body = _apply_as(control_plane, sa_token, f"/api/v1/namespaces/{team}",
                             {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team, "labels": labels}})
    assert status == 201, body  # a PATCH that creates: create + patch
    status, body = _apply_as(control_plane, sa_token, f"/api/v1/namespaces/{team}/serviceaccounts/image-factory-builder",
                             {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "image-factory-builder", "namespace": team, "labels": labels}})
    assert status == 201, body
    # A Role within the reconciler's own permissions: allowed without escalate.
    within = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "builder", "namespace": team, "labels": labels},
              "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
                        {"apiGroups": ["tekton.dev"], "resources": ["taskruns"], "verbs": ["get", "list"]}]}
    status, body = _apply_as(control_plane, sa_token, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/roles/builder",
                             within)
    assert status == 201, body
    status, body = _apply_as(control_plane, sa_token,
                             f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/rolebindings/builder",
                             {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                              "metadata": {"name": "builder", "namespace": team, "labels": labels},
                              "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "builder"},
                              "subjects": [{"kind": "ServiceAccount", "name": "image-factory-builder",
                                            "namespace": team}]})
    assert status == 201, body
    # A Role granting what the reconciler does not hold is refused: RBAC escalation prevention.
    beyond = {**within, "metadata": {**within["metadata"], "name": "beyond"},
              "rules": [{"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}]}
    status, body = _apply_as(control_plane, sa_token, f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/roles/beyond",
                             beyond)
    assert status == 403 and "attempting to grant RBAC permissions not currently held" in body["message"], body
    # Binding a ClusterRole: only the one the OpenShift tenancy needs, never cluster-admin.
    for role, expected in (("system:openshift:scc:anyuid", 201), ("cluster-admin", 403)):
        name = f"builder-{role.replace(':', '-')}"
        status, body = _apply_as(control_plane, sa_token,
                                 f"/apis/rbac.authorization.k8s.io/v1/namespaces/{team}/rolebindings/{name}",
                                 {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                                  "metadata": {"name": name, "namespace": team, "labels": labels},
                                  "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                              "name": role},
                                  "subjects": [{"kind": "ServiceAccount", "name": "image-factory-builder",
                                                "namespace": team}]})
        assert status == expected, (role, body)
    # A PipelineRun: created by apply, then pruned.
    run = {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
           "metadata": {"name": "web-frontend-1", "namespace": team, "labels": labels},
           "spec": {"pipelineRef": {"name": "docker-build"}}}
    path = f"/apis/tekton.dev/v1/namespaces/{team}/pipelineruns/web-frontend-1"
    status, body = _apply_as(control_plane, sa_token, path, run)
    assert status == 201, body
    status, body = control_plane.request("DELETE", path, token=sa_token)
    assert status == 200, body
    # Namespaces are never pruned: the reconciler cannot delete one.
    status, body = control_plane.request("DELETE", f"/api/v1/namespaces/{team}", token=sa_token)
    assert status == 403
    control_plane.kubectl("delete", "namespace", team, "--wait=false")


def test_leader_election_works_with_the_service_account_token(control_plane, sa_token, tmp_path):
    from reconciler.cluster.leases import LeaseElector, LeaseTiming

    control_plane.request("DELETE", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/image-factory")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "sa.kubeconfig", token=sa_token, user="image-factory")
    from reconciler.cluster.leases import api_client

    elector = LeaseElector(api_client(kubeconfig), NS, "image-factory", "sa-test",
                           timing=LeaseTiming(3, 2, 0.5))
    assert elector.try_acquire_or_renew()  # create
    assert elector.try_acquire_or_renew()  # get + update
    assert elector.release()
    other = LeaseElector(api_client(kubeconfig), NS, "someone-elses-lease", "sa-test", timing=LeaseTiming(3, 2, 0.5))
    assert not other.try_acquire_or_renew()  # reading another Lease is forbidden (get is limited by name)


def test_a_whole_pass_and_its_watch_run_as_the_service_account(control_plane, sa_token, tmp_path):
    """The ClusterRole is enough for what a pass really sends: a repository whose provider
    reaches the control plane with the service account's token is reconciled (health,
    observe, apply, status back in Git), and its runs can be watched."""
    import queue
    import uuid

    from reconciler.cluster import connect
    from reconciler.cluster.watching import KindWatch

    from .helpers import cli, git
    from .test_cluster_support import kubeconfig_spec, write_kubeconfig
    from .test_diff_live import local_repo

    kubeconfig = write_kubeconfig(tmp_path / "sa-kubeconfig", control_plane.server, token=sa_token,
                                  ca_file=control_plane.ca_file)
    prefix = f"sa{uuid.uuid4().hex[:6]}-"
    src = local_repo(tmp_path, kubeconfig, prefix, builds=("web/frontend", "data/etl-runner"))
    provider = src / "providers/local.yaml"
    provider.write_text(provider.read_text().replace("    context: admin\n", ""))
    git(src, "init", "-q", "-b", "main")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "initial")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(src), str(remote))
    try:
        proc = cli("reconcile", "--once", "--repo", str(remote), "--workdir", str(tmp_path / "w"), "-o", "json")
        report = json.loads(proc.stdout)
        assert proc.returncode == 0, (report["errors"], proc.stderr)
        assert report["providers"]["local"] in ("Healthy", "Degraded")
        assert sum("PipelineRun" in a for a in report["applied"]) == 2 and report["status"]["result"] == "pushed"

        seen: queue.Queue = queue.Queue()
        conn = connect("local", kubeconfig_spec(kubeconfig))
        watch = KindWatch(conn, "tekton.dev/v1", "PipelineRun",
                          lambda e: seen.put(e) if e.namespace.startswith(prefix) else None, known={}).start()
        try:
            first = seen.get(timeout=10)  # the LIST as the service account, then the watch
            assert first.phase == "Pending"
            assert watch.streaming.wait(10) and watch.counts["reconnects"] == 0
        finally:
            watch.stop()
            conn.close()
    finally:
        for team in ("web", "data"):
            control_plane.kubectl("delete", "namespace", f"{prefix}{team}", "--wait=false", check=False)
