"""Builds without Tekton: a ``batch/v1`` Job per build.

- **kaniko-job** backend (seed 003): an init container clones the repository into an
  ``emptyDir``, then the Kaniko executor builds and pushes.
- **buildkit** backend: the same clone, then ``buildctl`` builds on the pool's BuildKit
  daemons -- over mTLS with the pool's client certificate (standalone pools), or through the
  BuildKit controller's gateway with certificates it issues for one allocation (controller
  pools).

Values reach the containers as arguments and environment variables only, escaped for
Kubernetes' ``$(VAR)`` expansion (:func:`kube_escape`); the scripts contain no build value.
"""

from __future__ import annotations

import posixpath
from typing import Any

from . import images
from .common import RENDERER_VERSION, annotations, digest, duration_seconds, hashed_name, labels, metadata, plain_copy
from .context import DEFAULT_REGISTRY_SECRET, FS_GROUP, BuildFacts, cache_image
from .quoting import kube_escape, plain_build_args

KANIKO_TEMPLATE = f"kaniko-job@{RENDERER_VERSION}"
BUILDKIT_TEMPLATE = f"buildkit-job@{RENDERER_VERSION}"
BACKOFF_LIMIT = 1
DEFAULT_RETENTION = "24h"
# Where the BuildKit controller's API listens (its Helm chart's default Service).
CONTROLLER_ENDPOINT = "http://buildkit-controller.buildkit-system.svc:8082"

CLONE_SCRIPT = """\
set -eu
umask 0002
dest=/workspace/src
git init --quiet "$dest"
cd "$dest"
git remote add origin "$GIT_URL"
if git fetch --quiet --depth 1 origin "$GIT_REVISION"; then
  git checkout --quiet --detach FETCH_HEAD
else
  git fetch --quiet --tags origin '+refs/heads/*:refs/remotes/origin/*'
  git checkout --quiet --detach "$GIT_REVISION"
fi
git submodule update --quiet --init --recursive --depth 1
git rev-parse HEAD
"""

# Asks the BuildKit controller for a worker; writes the CA, the client certificate (its CN
# carries the allocation token the gateway routes by) and the key. No build value inside.
ALLOCATE_SCRIPT = """\
import base64, json, os, urllib.request
with open(os.environ["TOKEN_FILE"]) as fh:
    token = fh.read().strip()
body = json.dumps({"poolName": os.environ["POOL"], "namespace": os.environ["POOL_NAMESPACE"],
                   "ttl": os.environ["TTL"], "jobId": os.environ["JOB_ID"]}).encode()
request = urllib.request.Request(os.environ["CONTROLLER"] + "/api/v1/workers/allocate", data=body, method="POST",
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=600) as response:
    answer = json.load(response)
for field, name in (("caCert", "ca.crt"), ("clientCert", "tls.crt"), ("clientKey", "tls.key")):
    with open(os.path.join(os.environ["OUT"], name), "wb") as fh:
        fh.write(base64.b64decode(answer[field]))
print("allocated worker", answer.get("workerName", "?"))
"""



def restricted(uid: int = 65532) -> dict:
    """Seed 003's security context, for every container that allows it (a fresh dict)."""
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def kaniko_security() -> dict:
    """Kaniko unpacks images into its own root filesystem, as root: of seed 003's list it keeps
    what it can -- no privilege escalation, a minimal capability set, the default seccomp profile."""
    return {"runAsUser": 0, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID",
                                                      "SETUID", "SETFCAP"]},
            "seccompProfile": {"type": "RuntimeDefault"}}


def _clone_resources() -> dict:
    return {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}


def _clone_container(facts: BuildFacts) -> dict:
    return {
        "name": "clone",
        "image": images.GIT,
        "command": ["/bin/sh", "-c", kube_escape(CLONE_SCRIPT)],
        "env": [{"name": "GIT_URL", "value": kube_escape(facts.git)},
                {"name": "GIT_REVISION", "value": kube_escape(facts.revision)},
                {"name": "HOME", "value": "/tmp"}],
        "resources": _clone_resources(),
        "securityContext": restricted(),
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}, {"name": "tmp", "mountPath": "/tmp"}],
    }


def _registry_volume(facts: BuildFacts) -> dict:
    return {"name": "registry", "secret": {
        "secretName": facts.push_secret or DEFAULT_REGISTRY_SECRET, "optional": facts.push_secret is None,
        "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}}


def _job(facts: BuildFacts, revision: str, template: str, pod_spec: dict, retention: str | None) -> dict:
    run_labels = labels(build=facts.name, pool=facts.pool, team=facts.team, component="run")
    spec = {
        "backoffLimit": BACKOFF_LIMIT,
        "activeDeadlineSeconds": duration_seconds(facts.timeout),
        "ttlSecondsAfterFinished": duration_seconds(retention or DEFAULT_RETENTION),
        "template": {"metadata": {"labels": dict(run_labels)}, "spec": pod_spec},
    }
    job_hash = digest({"namespace": facts.namespace, "build": facts.name, "spec": spec}, 10)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata(hashed_name(facts.name, job_hash), facts.namespace, run_labels,
                             annotations(revision, template, source=facts.source_path)),
        "spec": spec,
    }


def _pod(facts: BuildFacts, init: list[dict], main: dict, volumes: list[dict]) -> dict:
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": facts.service_account,
        "automountServiceAccountToken": False,
        "securityContext": {"fsGroup": FS_GROUP, "fsGroupChangePolicy": "OnRootMismatch",
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": init,
        "containers": [main],
        "volumes": volumes,
    }
    if facts.node_selector:
        pod["nodeSelector"] = plain_copy(facts.node_selector)
    if facts.tolerations:
        pod["tolerations"] = plain_copy(facts.tolerations)
    if facts.affinity:
        pod["affinity"] = plain_copy(facts.affinity)
    return pod


def kaniko_job(facts: BuildFacts, revision: str, retention: str | None) -> dict:
    args = [
        kube_escape(f"--dockerfile=/workspace/src/{facts.dockerfile}"),
        kube_escape(f"--context=dir:///workspace/src/{facts.context_dir}"),
        kube_escape(f"--destination={facts.image}"),
        f"--custom-platform={facts.platforms[0]}",
        "--cache=true",
        "--cache-ttl=24h",
    ] + [f"--build-arg={arg}" for arg in plain_build_args(facts.build_args)]
    kaniko = {
        "name": "kaniko",
        "image": images.KANIKO,
        "args": args,
        "env": [{"name": "DOCKER_CONFIG", "value": "/kaniko/.docker"}],
        "resources": facts.resources,  # fresh per build
        "securityContext": kaniko_security(),
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"},
                         {"name": "registry", "mountPath": "/kaniko/.docker", "readOnly": True}],
    }
    volumes = [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}, _registry_volume(facts)]
    pod = _pod(facts, [_clone_container(facts)], kaniko, volumes)
    return _job(facts, revision, KANIKO_TEMPLATE, pod, retention)


def buildctl_args(facts: BuildFacts, tls_name: str | None) -> list[str]:
    dockerfile = f"/workspace/src/{facts.dockerfile}"
    args = []
    if tls_name:
        args += ["--tlsservername", tls_name, "--tlscacert", "/certs/ca.crt", "--tlscert", "/certs/tls.crt",
                 "--tlskey", "/certs/tls.key"]
    args += [
        "build", "--frontend", "dockerfile.v0",
        "--local", kube_escape(f"context=/workspace/src/{facts.context_dir}"),
        "--local", kube_escape(f"dockerfile={posixpath.dirname(dockerfile)}"),
        "--opt", kube_escape(f"filename={posixpath.basename(dockerfile)}"),
        "--opt", "platform=" + ",".join(facts.platforms),
    ]
    for arg in plain_build_args(facts.build_args):
        args += ["--opt", f"build-arg:{arg}"]
    if facts.method == "buildx":
        cache = kube_escape(cache_image(facts.image))
        args += ["--import-cache", f"type=registry,ref={cache}", "--export-cache", f"type=registry,ref={cache},mode=max"]
    args += ["--output", kube_escape(f"type=image,name={facts.image},push=true")]
    return args


def buildkit_job(facts: BuildFacts, revision: str, retention: str | None, *, address: str, tls_name: str | None,
                 client_secret: str | None, controller_pool: tuple[str, str] | None = None) -> dict:
    """A build on a BuildKit pool. ``controller_pool`` (pool, namespace) switches to allocation
    through the BuildKit controller; otherwise ``client_secret`` holds the pool's client cert."""
    buildctl = {
        "name": "buildctl",
        "image": images.BUILDKIT,
        "command": ["buildctl"],
        "args": ["--addr", address] + buildctl_args(facts, tls_name),
        "env": [{"name": "DOCKER_CONFIG", "value": "/home/user/.docker"}, {"name": "HOME", "value": "/tmp"}],
        "resources": facts.resources,  # fresh per build
        "securityContext": restricted(1000),
        "volumeMounts": [{"name": "workspace", "mountPath": "/workspace", "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "registry", "mountPath": "/home/user/.docker", "readOnly": True}],
    }
    volumes = [{"name": "workspace", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}, _registry_volume(facts)]
    init = [_clone_container(facts)]
    if tls_name:
        buildctl["volumeMounts"].append({"name": "certs", "mountPath": "/certs", "readOnly": True})
    if controller_pool is not None:
        pool, pool_namespace = controller_pool
        volumes.append({"name": "certs", "emptyDir": {"medium": "Memory"}})
        volumes.append({"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}})
        init.append({
            "name": "allocate",
            "image": images.PYTHON,
            "command": ["python3", "-c", kube_escape(ALLOCATE_SCRIPT)],
            "env": [
                {"name": "CONTROLLER", "value": CONTROLLER_ENDPOINT},
                {"name": "POOL", "value": pool},
                {"name": "POOL_NAMESPACE", "value": pool_namespace},
                {"name": "TTL", "value": f"{duration_seconds(facts.timeout)}s"},
                {"name": "JOB_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "TOKEN_FILE", "value": "/var/run/secrets/tokens/token"},
                {"name": "OUT", "value": "/certs"},
            ],
            "resources": _clone_resources(),
            "securityContext": restricted(),
            "volumeMounts": [{"name": "certs", "mountPath": "/certs"},
                             {"name": "token", "mountPath": "/var/run/secrets/tokens", "readOnly": True}],
        })
    elif client_secret:
        volumes.append({"name": "certs", "secret": {"secretName": client_secret}})
    pod = _pod(facts, init, buildctl, volumes)
    return _job(facts, revision, BUILDKIT_TEMPLATE, pod, retention)
