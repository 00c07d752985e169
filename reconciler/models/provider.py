"""``providers/*.yaml``: one Kubernetes cluster each (admin-owned).

Seed 000 lists eight provider types and how each authenticates; seed 001 describes the
connection methods. ``auth`` says *how* to connect (non-secret settings); ``credentials``
holds the secret parts, always sealed (``image-factory seal``), never plain text.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, Field, model_validator

from .common import API_VERSION, at, Architecture, DNSName, LabelKey, LabelValue, Metadata, Quantity, Strict, Taint, TeamRef
from .status import ProviderStatus

ProviderType = Literal["eks", "gke", "aks", "oke", "vks", "openshift", "rancher", "kubernetes"]
PROVIDER_TYPES: tuple[str, ...] = ("eks", "gke", "aks", "oke", "vks", "openshift", "rancher", "kubernetes")

# Sealed values are opaque single-line strings made by `image-factory seal`.
SEALED_PREFIX = "sealed:v1:"
_SEALED = re.compile(r"^sealed:v1:[A-Za-z0-9_.:=-]+$")


def _sealed(value: str) -> str:
    # Never echo the value: if it is not sealed, it may be a plain-text secret.
    if not _SEALED.match(value):
        raise ValueError(
            "must be a sealed value made by `image-factory seal` (starting with 'sealed:v1:'); "
            "plain-text credentials are never accepted in Git"
        )
    return value


SealedValue = Annotated[str, AfterValidator(_sealed)]
CredentialField = Literal["kubeconfig", "token", "caCert", "clientCert", "clientKey", "clientSecret"]


class KubeconfigAuth(Strict):
    """A kubeconfig: sealed in ``credentials.kubeconfig``, or a local file for development."""

    method: Literal["kubeconfig"]
    # Path to a kubeconfig on the reconciler's machine (local clusters, tests, demo).
    kubeconfig: str | None = None
    context: str | None = None


class InClusterAuth(Strict):
    """The reconciler's own service account, when it runs inside this cluster."""

    method: Literal["in-cluster"]


class ServiceAccountTokenAuth(Strict):
    """A service-account bearer token (``credentials.token``) and the cluster CA."""

    method: Literal["service-account-token"]
    serviceAccount: str | None = None  # informational: namespace/name the token belongs to


class CertificateAuth(Strict):
    """A client certificate and key (``credentials.clientCert``/``clientKey``)."""

    method: Literal["certificate"]


class AwsIamAuth(Strict):
    """EKS: IAM role, token from ``aws eks get-token`` (kubeconfig exec plugin)."""

    method: Literal["aws-iam"]
    clusterName: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    roleArn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$")


class GcpWorkloadIdentityAuth(Strict):
    """GKE: workload identity via ``gke-gcloud-auth-plugin``."""

    method: Literal["gcp-workload-identity"]
    project: str = Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
    location: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$")
    clusterName: str = Field(min_length=1, pattern=r"^[a-z0-9-]+$")
    serviceAccount: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com$")


class AzureManagedIdentityAuth(Strict):
    """AKS: managed identity or workload identity via ``kubelogin``."""

    method: Literal["azure-managed-identity"]
    loginMode: Literal["msi", "workloadidentity"] = "msi"
    clientId: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")
    tenantId: str | None = Field(default=None, pattern=r"^[0-9a-fA-F-]{36}$")
    # The AKS AAD server application id (same for every AKS cluster, overridable).
    serverId: str = "6dae42f8-4368-4678-94ff-3960e28e3630"


class OciInstancePrincipalAuth(Strict):
    """OKE: instance principal via ``oci ce cluster generate-token``."""

    method: Literal["oci-instance-principal"]
    clusterId: str = Field(pattern=r"^ocid1\.cluster\.[a-z0-9.-]+$")
    region: str = Field(pattern=r"^[a-z]+-[a-z]+-[0-9]+$")


class ApiTokenAuth(Strict):
    """VMware vKS and Rancher: an API token (``credentials.token``)."""

    method: Literal["api-token"]


class OpenShiftOAuthAuth(Strict):
    """OpenShift: an OAuth access token (``credentials.token``) or a service account's."""

    method: Literal["openshift-oauth"]


Auth = Annotated[
    Union[
        KubeconfigAuth,
        InClusterAuth,
        ServiceAccountTokenAuth,
        CertificateAuth,
        AwsIamAuth,
        GcpWorkloadIdentityAuth,
        AzureManagedIdentityAuth,
        OciInstancePrincipalAuth,
        ApiTokenAuth,
        OpenShiftOAuthAuth,
    ],
    Field(discriminator="method"),
]

# Which auth methods each platform really offers (seed 000's table, seed 001's methods).
_COMMON = ("kubeconfig", "in-cluster", "service-account-token")
AUTH_METHODS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "eks": ("aws-iam", *_COMMON),
    "gke": ("gcp-workload-identity", *_COMMON),
    "aks": ("azure-managed-identity", *_COMMON, "certificate"),
    "oke": ("oci-instance-principal", *_COMMON),
    "vks": ("api-token", *_COMMON),
    "openshift": ("openshift-oauth", *_COMMON),
    "rancher": ("api-token", *_COMMON),
    "kubernetes": (*_COMMON, "certificate"),
}

# Which sealed credential fields each method needs (and may have).
CREDENTIALS_BY_METHOD: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    #                          required                      optional
    "kubeconfig": ((), ("kubeconfig",)),
    "in-cluster": ((), ()),
    "service-account-token": (("token",), ("caCert",)),
    "certificate": (("clientCert", "clientKey"), ("caCert",)),
    "aws-iam": ((), ("caCert",)),
    "gcp-workload-identity": ((), ("caCert",)),
    "azure-managed-identity": ((), ("caCert", "clientSecret")),
    "oci-instance-principal": ((), ("caCert",)),
    "api-token": (("token",), ("caCert",)),
    "openshift-oauth": (("token",), ("caCert",)),
}

Capability = Literal[
    "gpu", "high-memory", "amd64", "arm64", "multi-arch", "air-gapped", "legacy", "custom-hardware", "fast-storage"
]


class NodeCapacity(Strict):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpu: int = Field(default=0, ge=0)
    nodes: int = Field(default=1, ge=0)


class NodePool(Strict):
    name: DNSName
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    taints: list[Taint] = Field(default_factory=list)
    capacity: NodeCapacity = NodeCapacity()
    architectures: list[Architecture] = Field(default_factory=lambda: ["amd64"], min_length=1)
    # gpuType names the accelerator (e.g. nvidia-a100) for reasons and custom-hardware matching.
    gpuType: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")
    capabilities: list[Capability] = Field(default_factory=list)
    # Seed 002: build nodes are dedicated machines joined to the cluster as a node pool,
    # labelled and tainted, that an admin marks as build nodes.
    buildNodes: bool = False
    # Custom hardware this node pool offers (e.g. "xilinx-fpga"), matched by name.
    hardware: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]] = Field(default_factory=list)


class ProviderSpec(Strict):
    type: ProviderType
    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    endpoint: str | None = Field(default=None, pattern=r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\w./-]*)?$")
    auth: Auth
    credentials: dict[CredentialField, SealedValue] = Field(default_factory=dict)
    capabilities: list[Capability] = Field(default_factory=list)
    nodePools: list[NodePool] = Field(min_length=1)
    # Teams allowed to build here; "*" for all.
    tenants: list[TeamRef] = Field(default_factory=lambda: ["*"])
    # Whether the BuildKit controller (seed 004) is installed, for buildkit pools.
    buildkitController: bool = False
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _method_fits_type(cls, data: object) -> object:
        # Checked first, so a GKE provider written with EKS auth gets this one clear error
        # instead of "unknown field" for every GKE setting.
        if isinstance(data, dict) and isinstance(data.get("auth"), dict):
            kind, method = data.get("type"), data["auth"].get("method")
            allowed = AUTH_METHODS_BY_TYPE.get(kind) if isinstance(kind, str) else None
            if allowed and isinstance(method, str) and method not in allowed:
                raise at("auth.method", f"'{method}' is not available for type {kind}; use one of {', '.join(allowed)}")
        return data

    @model_validator(mode="after")
    def _auth_fits_type(self) -> "ProviderSpec":
        required, optional = CREDENTIALS_BY_METHOD[self.auth.method]
        missing = [f for f in required if f not in self.credentials]
        if missing:
            raise at("credentials", f"auth.method {self.auth.method} needs sealed credentials.{', credentials.'.join(missing)}")
        extra = [f for f in self.credentials if f not in required + optional]
        if extra:
            raise at(f"credentials.{extra[0]}", f"not used by auth.method {self.auth.method}")
        if self.auth.method == "kubeconfig" and not (self.auth.kubeconfig or "kubeconfig" in self.credentials):
            raise at("auth", "method kubeconfig needs auth.kubeconfig (a local path) or sealed credentials.kubeconfig")
        if self.auth.method not in ("kubeconfig", "in-cluster") and not self.endpoint:
            raise at("auth.method", f"{self.auth.method} needs spec.endpoint")
        seen: set[str] = set()
        for i, pool in enumerate(self.nodePools):
            if pool.name in seen:
                raise at(f"nodePools[{i}].name", f"node pool name '{pool.name}' is used twice")
            seen.add(pool.name)
        return self


class Provider(Strict):
    apiVersion: Literal["imagefactory.dev/v1alpha1"] = API_VERSION
    kind: Literal["Provider"] = "Provider"
    metadata: Metadata
    spec: ProviderSpec
    status: ProviderStatus | None = None
