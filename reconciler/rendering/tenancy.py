"""Per-team isolation: one Namespace per team, the ServiceAccount builds run as, and its RBAC.

What the runs need from the Kubernetes API is little: build pods never write to the API, and
Kubernetes itself mounts push secrets and volumes. So the ServiceAccount does not even get a
token automatically (``automountServiceAccountToken: false``; the BuildKit-controller Job
mounts a short-lived projected token explicitly, for the controller's allocation API). The
Role grants read-only access to the team's own runs (so a step or a finally task can report
on its run), nothing cluster-wide. On OpenShift the ServiceAccount also needs the ``anyuid``
SecurityContextConstraints: Kaniko and Nix must run as uid 0.
"""

from __future__ import annotations

from typing import Any

from .common import RENDERER_VERSION, annotations, labels, metadata

DEFAULT_PREFIX = "if-"
DEFAULT_SERVICE_ACCOUNT = "image-factory-builder"
DEFAULT_TIMEOUT = "1h"
ROLE_NAME = "image-factory-builder"
TEMPLATE = f"team@{RENDERER_VERSION}"


# ``factory`` below is the FactoryConfig model or None (entry points unwrap Entities).


def defaults_of(factory: Any) -> Any:
    return factory.spec.defaults if factory is not None else None


def team_namespace(team: str, factory: Any) -> str:
    if factory is not None:
        for declared in factory.spec.teams:
            if declared.name == team and declared.namespace:
                return declared.namespace
        prefix = factory.spec.defaults.namespacePrefix
    else:
        prefix = DEFAULT_PREFIX
    name = f"{prefix}{team}"
    return name[:63].rstrip("-")


def service_account(factory: Any) -> str:
    defaults = defaults_of(factory)
    return defaults.serviceAccount if defaults is not None else DEFAULT_SERVICE_ACCOUNT


def default_timeout(factory: Any) -> str:
    defaults = defaults_of(factory)
    return defaults.timeout if defaults is not None else DEFAULT_TIMEOUT


def render_team(team: str, namespace: str, sa: str, provider_type: str, revision: str) -> list[dict]:
    """Namespace, ServiceAccount, Role and RoleBinding(s) of one team on one cluster."""
    lbl = labels(team=team, component="team")
    ann = annotations(revision, TEMPLATE)
    ns_labels = {**lbl,
                 # Builds run as root (Kaniko, Nix) or with unconfined seccomp (rootless BuildKit):
                 # the restricted/baseline levels would reject them, so only warn and audit.
                 "pod-security.kubernetes.io/warn": "baseline",
                 "pod-security.kubernetes.io/audit": "baseline"}
    objects = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata(namespace, None, ns_labels, dict(ann))},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(sa, namespace, dict(lbl), dict(ann)),
         "automountServiceAccountToken": False},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": metadata(ROLE_NAME, namespace, dict(lbl), dict(ann)),
         "rules": [
             {"apiGroups": ["tekton.dev"], "resources": ["pipelineruns", "taskruns"], "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": metadata(ROLE_NAME, namespace, dict(lbl), dict(ann)),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]},
    ]
    if provider_type == "openshift":
        objects.append(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": metadata(f"{ROLE_NAME}-anyuid", namespace, dict(lbl), dict(ann)),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "system:openshift:scc:anyuid"},
             "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}]})
    return objects
