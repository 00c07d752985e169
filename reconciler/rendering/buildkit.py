"""The ``buildkit`` backend's per-pool infrastructure (seed 004), in one of two forms.

- **controller**: the provider runs the BuildKit controller (``spec.buildkitController``, or
  ``pool.spec.buildkit.mode: controller``): one ``BuildKitPool`` with every required field
  of its CRD; the controller runs the gateway and the ephemeral workers and issues
  certificates. Builds allocate a worker through the controller's API (see ``jobs.py``).
- **standalone**: rootless ``buildkitd`` as a Deployment (+ HorizontalPodAutoscaler for
  min/max) behind a Service, with mTLS: a CA, a server certificate whose SANs are the
  Service's DNS names, and a client certificate per team namespace the pool serves.

Both live in the factory's BuildKit namespace (``<namespacePrefix>buildkit``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from . import images
from .certificates import CertStore, Issuer, Policy
from .common import RENDERER_VERSION, annotations, digest, dns_name, duration_seconds, labels, metadata, plain_copy
from .context import Scheduling
from .tenancy import DEFAULT_PREFIX

POOL_TEMPLATE = f"buildkit-pool@{RENDERER_VERSION}"
DAEMON_TEMPLATE = f"buildkitd@{RENDERER_VERSION}"
DAEMON_PORT = 1234
GATEWAY_PORT = 1235
CLUSTER_DOMAIN = "cluster.local"

# Seed 004's worker sizes: (requests, limits).
SIZES = {
    "small": ({"cpu": "500m", "memory": "512Mi"}, {"cpu": "2", "memory": "2Gi"}),
    "medium": ({"cpu": "1", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"}),
    "large": ({"cpu": "2", "memory": "4Gi"}, {"cpu": "8", "memory": "8Gi"}),
    "xlarge": ({"cpu": "4", "memory": "8Gi"}, {"cpu": "16", "memory": "16Gi"}),
}
SIDECAR = ({"cpu": "10m", "memory": "32Mi"}, {"cpu": "100m", "memory": "64Mi"})


def buildkit_namespace(factory: Any) -> str:
    prefix = factory.spec.defaults.namespacePrefix if factory is not None else DEFAULT_PREFIX
    return f"{prefix}buildkit"


def settings_of(pool: Any) -> Any:
    from ..models.pool import BuildKitSettings
    return pool.spec.buildkit or BuildKitSettings()


def form_of(pool: Any, provider: Any) -> str:
    mode = settings_of(pool).mode
    if mode == "auto":
        return "controller" if provider.spec.buildkitController else "standalone"
    return mode


@dataclass(frozen=True)
class Endpoint:
    """How a build reaches a pool's BuildKit."""

    form: str
    address: str  # tcp://host:port
    tls_name: str | None  # server name to verify (None: plain TCP)
    namespace: str
    client_secret: str | None  # standalone: Secret (in the team namespace) with the client cert


def daemon_name(pool: str) -> str:
    return dns_name(f"{pool}-buildkitd")


def client_secret_name(pool: str) -> str:
    return dns_name(f"{pool}-buildkit-client")


def service_dns_names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}"]


def endpoint(pool: Any, provider: Any, factory: Any) -> Endpoint:
    namespace = buildkit_namespace(factory)
    if form_of(pool, provider) == "controller":
        host = f"{pool.name}.{namespace}.svc"
        return Endpoint("controller", f"tcp://{host}:{GATEWAY_PORT}", host, namespace, None)
    service = daemon_name(pool.name)
    host = f"{service}.{namespace}.svc"
    tls = settings_of(pool).tls.enabled
    return Endpoint("standalone", f"tcp://{host}:{DAEMON_PORT}", host if tls else None, namespace,
                    client_secret_name(pool.name) if tls else None)


def _pool_labels(pool: str, component: str) -> dict[str, str]:
    return labels(pool=pool, component=component)


def buildkit_pool(pool: Any, provider: Any, factory: Any, revision: str, sched: Scheduling,
                  service_account: str, teams: Iterable[str], team_namespaces: dict[str, str]) -> list[dict]:
    """The controller form: one BuildKitPool."""
    settings = settings_of(pool)
    namespace = buildkit_namespace(factory)
    requests, limits = SIZES[settings.size]
    users = _allowed_users(pool, provider, factory, service_account, teams, team_namespaces)
    spec = {
        "buildkitImage": images.BUILDKIT,
        "scaling": {"mode": "auto", "min": settings.scaling.min, "max": settings.scaling.max,
                    "scaleDownDelay": settings.idleTimeout},
        "resources": {"buildkit": {"requests": dict(requests), "limits": dict(limits)},
                      "sidecar": {"requests": dict(SIDECAR[0]), "limits": dict(SIDECAR[1])}},
        "cache": {"gc": {"enabled": True, "keepDuration": "168h"}},
        "tls": {"enabled": settings.tls.enabled, "mode": "auto",
                "auto": {"organization": "image-factory", "serverCertDuration": settings.tls.validity,
                         "rotateBeforeExpiry": settings.tls.rotateBefore}},
        "auth": {"methods": [{"type": "mtls", "mtls": {"required": True}}],
                 "rbac": {"enabled": True, "rules": [{"users": users, "pools": [pool.name]}]}},
        "networking": {"serviceType": "ClusterIP", "port": GATEWAY_PORT},
        "gateway": {"enabled": True, "replicas": 1},
        "observability": {"metrics": {"enabled": True, "port": 9090}, "logging": {"level": "info", "format": "json"}},
    }
    ann = annotations(revision, POOL_TEMPLATE, source=getattr(pool, "path", None))
    # The CRD has no scheduling fields: record the node pool the admin meant, for people.
    ann["imagefactory.dev/node-pool"] = pool.spec.nodePool
    return [
        _namespace(namespace, revision),
        {"apiVersion": "buildkit.smrt-devops.net/v1alpha1", "kind": "BuildKitPool",
         "metadata": metadata(pool.name, namespace, _pool_labels(pool.name, "buildkit"), ann), "spec": spec},
    ]


def _allowed_users(pool: Any, provider: Any, factory: Any, sa: str, teams: Iterable[str],
                   team_namespaces: dict[str, str]) -> list[str]:
    """The build ServiceAccounts the controller lets allocate workers (its RBAC matches the
    identity of the ServiceAccount token, with wildcards)."""
    declared = [t for t in pool.spec.teams if t != "*"]
    if "*" in pool.spec.teams:
        prefix = factory.spec.defaults.namespacePrefix if factory is not None else DEFAULT_PREFIX
        users = [f"system:serviceaccount:{prefix}*:{sa}"]
        # Teams with their own namespace names are not covered by the prefix wildcard.
        extra = sorted({ns for ns in team_namespaces.values() if not ns.startswith(prefix)})
        return users + [f"system:serviceaccount:{ns}:{sa}" for ns in extra]
    names = sorted(set(declared) | set(teams))
    return [f"system:serviceaccount:{team_namespaces[t]}:{sa}" for t in names if t in team_namespaces]


def _namespace(namespace: str, revision: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": metadata(namespace, None, labels(component="buildkit"),
                                 annotations(revision, DAEMON_TEMPLATE))}


def standalone(pool: Any, provider: Any, factory: Any, revision: str, sched: Scheduling,
               certs: CertStore, team_namespaces: dict[str, str], now=None) -> list[dict]:
    """The standalone form: CA, server and client Secrets, Service, Deployment, autoscaler."""
    settings = settings_of(pool)
    namespace = buildkit_namespace(factory)
    name = daemon_name(pool.name)
    lbl = _pool_labels(pool.name, "buildkitd")
    ann = annotations(revision, DAEMON_TEMPLATE, source=getattr(pool, "path", None))
    selector = {"app.kubernetes.io/name": "buildkitd", "imagefactory.dev/pool": pool.name}
    objects: list[dict] = [_namespace(namespace, revision)]
    tls = settings.tls.enabled
    pod_annotations = {"container.apparmor.security.beta.kubernetes.io/buildkitd": "unconfined"}
    args = ["--addr", "unix:///run/user/1000/buildkit/buildkitd.sock", "--addr", f"tcp://0.0.0.0:{DAEMON_PORT}"]
    if tls:
        policy = Policy(validity=_delta(settings.tls.validity), rotate_before=_delta(settings.tls.rotateBefore))
        issuer = Issuer(certs, provider.name, policy, now)
        ca_name = dns_name(f"{pool.name}-buildkit-ca")
        ca = issuer.ca(namespace, ca_name, f"image-factory {pool.name} buildkit CA")
        server = issuer.leaf(namespace, dns_name(f"{pool.name}-buildkitd-tls"), ca, name,
                             service_dns_names(name, namespace), server=True)
        objects.append(_secret(ca_name, namespace, "Opaque", ca, lbl, ann))
        objects.append(_secret(dns_name(f"{pool.name}-buildkitd-tls"), namespace, "kubernetes.io/tls", server, lbl, ann))
        for team, team_ns in sorted(team_namespaces.items()):
            client = issuer.leaf(team_ns, client_secret_name(pool.name), ca, f"{team}.{pool.name}.image-factory",
                                 [], server=False)
            objects.append(_secret(client_secret_name(pool.name), team_ns, "kubernetes.io/tls", client,
                                   {**labels(pool=pool.name, team=team, component="buildkit-client")}, ann))
        # Pods restart when the server certificate is rotated (buildkitd reads it at start).
        pod_annotations["imagefactory.dev/tls-digest"] = digest(server["tls.crt"])
        args += ["--tlscacert", "/certs/ca.crt", "--tlscert", "/certs/tls.crt", "--tlskey", "/certs/tls.key"]
    args.append("--oci-worker-no-process-sandbox")
    requests, limits = SIZES[settings.size]
    probe = {"exec": {"command": ["buildctl", "debug", "workers"]}, "initialDelaySeconds": 5, "periodSeconds": 30}
    liveness = plain_copy(probe)
    container = {
        "name": "buildkitd",
        "image": images.BUILDKIT,
        "args": args,
        "ports": [{"name": "buildkitd", "containerPort": DAEMON_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": liveness,
        "resources": {"requests": dict(requests), "limits": dict(limits)},
        # Rootless BuildKit: uid 1000 in its own user namespace (newuidmap is setuid, so
        # privilege escalation stays allowed); seccomp and AppArmor must allow its mounts.
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000,
                            "seccompProfile": {"type": "Unconfined"}},
        "volumeMounts": [{"name": "buildkitd", "mountPath": "/home/user/.local/share/buildkit"}],
    }
    volumes: list[dict] = [{"name": "buildkitd", "emptyDir": {}}]
    if tls:
        container["volumeMounts"].append({"name": "certs", "mountPath": "/certs", "readOnly": True})
        volumes.append({"name": "certs", "secret": {"secretName": dns_name(f"{pool.name}-buildkitd-tls")}})
    pod_spec: dict[str, Any] = {"automountServiceAccountToken": False, "containers": [container], "volumes": volumes}
    if sched.node_selector:
        pod_spec["nodeSelector"] = plain_copy(sched.node_selector)
    if sched.tolerations:
        pod_spec["tolerations"] = plain_copy(sched.tolerations)
    if sched.affinity:
        pod_spec["affinity"] = plain_copy(sched.affinity)
    low, high = max(1, settings.scaling.min), max(1, settings.scaling.max)
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": dict(selector)},
        "template": {"metadata": {"labels": {**lbl, **selector}, "annotations": pod_annotations}, "spec": pod_spec},
    }
    if high == low:
        deployment_spec = {"replicas": low, **deployment_spec}
    objects.append({"apiVersion": "v1", "kind": "Service", "metadata": metadata(name, namespace, dict(lbl), dict(ann)),
                    "spec": {"selector": dict(selector),
                             "ports": [{"name": "buildkitd", "port": DAEMON_PORT, "targetPort": DAEMON_PORT,
                                        "protocol": "TCP"}]}})
    objects.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata(name, namespace, dict(lbl), dict(ann)),
                    "spec": deployment_spec})
    if high > low:
        # autoscaling/v1 (served by every supported Kubernetes): the Deployment leaves replicas
        # to the autoscaler, so server-side apply never fights it.
        objects.append({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                        "metadata": metadata(name, namespace, dict(lbl), dict(ann)),
                        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                                 "minReplicas": low, "maxReplicas": high, "targetCPUUtilizationPercentage": 70}})
    return objects


def _secret(name: str, namespace: str, type_: str, data: dict, lbl: dict, ann: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(name, namespace, dict(lbl), dict(ann)),
            "type": type_, "data": dict(data)}


def _delta(text: str):
    import datetime as dt
    return dt.timedelta(seconds=duration_seconds(text))
