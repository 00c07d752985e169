"""``builds/<team>/*.yaml``: a user's build request (status written back by the reconciler)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from .common import API_VERSION, at, BuildMethod, DNSName, Duration, Infrastructure, Metadata, Quantity, Strict, _short
from .status import BuildStatus

# Image references, after the distribution/reference grammar (lowercase repository path,
# optional registry host[:port], optional :tag and/or @digest).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_IMAGE = re.compile(
    rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
)
_GIT_URL = re.compile(
    r"^(?:(?:https|http|ssh|git)://(?:[\w.~%!$&'()*+,;=-]+@)?[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[\w.~%!$&'()*+,;=@:-]*)*"
    r"|[\w.-]+@[A-Za-z0-9.-]+:[\w./~-]+)$"
)
_PLATFORM = re.compile(r"^(linux|windows)/(amd64|arm64|arm|ppc64le|s390x|riscv64|386)(/v[5-8])?$")
_RELATIVE = re.compile(r"^(?!/)(?!.*(?:^|/)\.\.(?:/|$))[\w./@+-]+$")
_BUILD_ARG = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _image(value: str) -> str:
    if len(value) > 255 or not _IMAGE.match(value):
        raise ValueError(
            f"'{_short(value)}' is not a valid image reference (expected e.g. registry.example.com/team/app:1.2.3)"
        )
    return value


def _git_url(value: str) -> str:
    if len(value) > 2048 or not _GIT_URL.match(value):
        raise ValueError(
            f"'{_short(value)}' is not a git URL the build can clone "
            "(https://host/path.git, ssh://git@host/path.git or git@host:path.git)"
        )
    return value


def _revision(value: str) -> str:
    bad = (
        not value
        or len(value) > 255
        or value.startswith(("-", "/", "."))
        or value.endswith((".", "/", ".lock"))
        or ".." in value
        or "@{" in value
        or "//" in value
        or any(c.isspace() or ord(c) < 0x20 or c in "~^:?*[\\\x7f$`'\"" for c in value)
    )
    if bad:
        raise ValueError(f"'{_short(value)}' is not a valid git branch, tag or commit")
    return value


def _relative(value: str) -> str:
    if len(value) > 1024 or not _RELATIVE.match(value):
        raise ValueError(f"'{_short(value)}' must be a relative path inside the repository (no '..', no leading '/')")
    return value


def _platform(value: str) -> str:
    if not _PLATFORM.match(value):
        raise ValueError(f"'{_short(value)}' is not a platform such as linux/amd64 or linux/arm64")
    return value


ImageRef = Annotated[str, AfterValidator(_image)]
GitURL = Annotated[str, AfterValidator(_git_url)]
Revision = Annotated[str, AfterValidator(_revision)]
RelativePath = Annotated[str, AfterValidator(_relative)]
Platform = Annotated[str, AfterValidator(_platform)]


class Source(Strict):
    git: GitURL
    revision: Revision = "main"
    contextDir: RelativePath = "."
    # docker, kaniko, buildx
    dockerfile: RelativePath | None = None
    # packer: the HCL template; nix: the flake reference inside the repo (e.g. .#image)
    template: RelativePath | None = None
    flake: str | None = Field(default=None, pattern=r"^[\w./-]*#[\w.-]+$|^\.$")
    # paketo: builder image
    builder: ImageRef | None = None


class Gpu(Strict):
    count: int = Field(default=1, ge=1, le=16)
    type: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")


class Requirements(Strict):
    gpu: Gpu | None = None
    cpu: Quantity | None = None
    memory: Quantity | None = None
    airGapped: bool = False
    legacySystem: bool = False
    customHardware: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9-]*$")


class Placement(Strict):
    provider: DNSName
    pool: DNSName | None = None


class BuildSpec(Strict):
    method: BuildMethod
    source: Source
    image: ImageRef
    platforms: list[Platform] = Field(default_factory=lambda: ["linux/amd64"], min_length=1, max_length=8)
    buildArgs: dict[Annotated[str, Field(pattern=_BUILD_ARG.pattern, max_length=128)], Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict, max_length=64
    )
    requirements: Requirements = Requirements()
    infrastructure: Infrastructure = "auto"
    placement: Placement | None = None
    # Admin override: honoured only for actors holding infrastructure:manage.
    force: bool = False
    templateVersion: str | None = Field(default=None, pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")
    timeout: Duration | None = None
    # Where kaniko/paketo push credentials come from (a Secret in the team namespace).
    pushSecret: DNSName | None = None

    @model_validator(mode="after")
    def _method_fields(self) -> "BuildSpec":
        src = self.source
        if self.method == "packer" and not src.template:
            raise at("source", "method packer needs source.template (the Packer HCL file)")
        if self.method == "nix" and not src.flake:
            raise at("source", "method nix needs source.flake (e.g. .#image)")
        if self.method != "packer" and src.template:
            raise at("source.template", f"is for method packer, not {self.method}")
        if self.method != "nix" and src.flake:
            raise at("source.flake", f"is for method nix, not {self.method}")
        if self.method != "paketo" and src.builder:
            raise at("source.builder", f"is for method paketo, not {self.method}")
        if self.method in ("packer", "nix", "paketo") and src.dockerfile:
            raise at("source.dockerfile", f"is not used by method {self.method}")
        if self.force and self.infrastructure == "auto" and self.placement is None:
            raise at("force", "needs infrastructure (kubernetes or build_nodes) or a placement to force")
        if len(set(self.platforms)) != len(self.platforms):
            raise at("platforms", "lists the same platform twice")
        return self


class BuildRequest(Strict):
    apiVersion: Literal["imagefactory.dev/v1alpha1"] = API_VERSION
    kind: Literal["BuildRequest"] = "BuildRequest"
    metadata: Metadata
    spec: BuildSpec
    status: BuildStatus | None = None
