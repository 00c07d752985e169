"""``pools/*.yaml``: where builds run on a provider (admin-owned)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .common import API_VERSION, at, BuildMethod, DNSName, Duration, Metadata, Strict, TeamRef
from .status import PoolStatus

Backend = Literal["tekton", "kaniko-job", "buildkit"]
BuildKitSize = Literal["small", "medium", "large", "xlarge"]


class BuildKitScaling(Strict):
    min: int = Field(default=0, ge=0, le=100)
    max: int = Field(default=5, ge=1, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> "BuildKitScaling":
        if self.min > self.max:
            raise at("min", f"{self.min} is greater than max ({self.max})")
        return self


class BuildKitTLS(Strict):
    enabled: bool = True
    # Certificates are rotated when less than this remains of their validity.
    rotateBefore: Duration = "720h"
    validity: Duration = "8760h"


class BuildKitSettings(Strict):
    # controller: render a BuildKitPool for the BuildKit controller (seed 004).
    # standalone: render a rootless buildkitd Deployment + Service with mTLS.
    # auto: controller when the provider says buildkitController: true.
    mode: Literal["auto", "controller", "standalone"] = "auto"
    scaling: BuildKitScaling = BuildKitScaling()
    size: BuildKitSize = "medium"
    tls: BuildKitTLS = BuildKitTLS()
    idleTimeout: Duration = "30m"


class PoolSpec(Strict):
    provider: DNSName
    nodePool: DNSName
    backend: Backend = "tekton"
    methods: list[BuildMethod] = Field(min_length=1)
    # Teams this pool serves; "*" for all teams the provider admits.
    teams: list[TeamRef] = Field(default_factory=lambda: ["*"])
    maxConcurrentBuilds: int = Field(default=5, ge=1, le=10000)
    # Higher is preferred when several pools fit equally well.
    priority: int = Field(default=0, ge=-100, le=100)
    buildkit: BuildKitSettings | None = None
    description: str = ""

    @model_validator(mode="after")
    def _backend_settings(self) -> "PoolSpec":
        if self.buildkit is not None and self.backend != "buildkit":
            raise at("buildkit", f"settings are only for backend buildkit, not {self.backend}")
        if self.backend == "kaniko-job":
            wrong = [m for m in self.methods if m not in ("docker", "kaniko")]
            if wrong:
                raise at("methods", f"backend kaniko-job builds Dockerfiles only (docker, kaniko), not {', '.join(wrong)}")
        if self.backend == "buildkit":
            wrong = [m for m in self.methods if m not in ("docker", "buildx")]
            if wrong:
                raise at("methods", f"backend buildkit builds with docker or buildx only, not {', '.join(wrong)}")
        return self


class Pool(Strict):
    apiVersion: Literal["imagefactory.dev/v1alpha1"] = API_VERSION
    kind: Literal["Pool"] = "Pool"
    metadata: Metadata
    spec: PoolSpec
    status: PoolStatus | None = None
