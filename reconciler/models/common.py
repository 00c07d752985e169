"""Building blocks shared by every kind: metadata, names, quantities, references."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

API_VERSION = "imagefactory.dev/v1alpha1"

# Kubernetes names: RFC 1123 label (namespaces, label values we derive from them).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
# Kubernetes quantities: 500m, 2, 1.5, 4Gi, 16G, 1e3 ...
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i?|m|k|u|n)?$")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")


class Strict(BaseModel):
    """Base of every model: unknown fields are errors, no silent coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def _dns_label(value: str) -> str:
    if len(value) > 63:
        raise ValueError(f"'{_short(value)}' is longer than 63 characters (a Kubernetes name limit)")
    if not _DNS_LABEL.match(value):
        raise ValueError(
            f"'{_short(value)}' is not a valid Kubernetes name: use lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _label_key(value: str) -> str:
    if len(value) > 317 or not _LABEL_KEY.match(value):
        raise ValueError(f"'{_short(value)}' is not a valid Kubernetes label key")
    return value


def _label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(f"'{_short(value)}' is not a valid Kubernetes label value (63 characters of [A-Za-z0-9-_.])")
    return value


def _quantity(value: object) -> str:
    # Accept 4, 0.5 and "4Gi"; keep everything as the Kubernetes string form.
    if isinstance(value, bool):
        raise ValueError("expected a quantity such as 2, 500m or 4Gi, not a boolean")
    if isinstance(value, (int, float)):
        value = repr(value) if isinstance(value, float) else str(value)
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"'{_short(str(value))}' is not a Kubernetes quantity such as 2, 500m or 4Gi")
    return value


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError(f"'{_short(value)}' is not a duration such as 90s, 30m or 1h30m")
    return value


def _short(value: str, limit: int = 80) -> str:
    """Quote user text safely in a message: one line, bounded length."""
    text = value.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


DNSName = Annotated[str, AfterValidator(_dns_label)]
LabelKey = Annotated[str, AfterValidator(_label_key)]
LabelValue = Annotated[str, AfterValidator(_label_value)]
Quantity = Annotated[str, BeforeValidator(_quantity)]
Duration = Annotated[str, AfterValidator(_duration)]
# "*" opens something to every team.
TeamRef = Annotated[str, AfterValidator(lambda v: v if v == "*" else _dns_label(v))]

Architecture = Literal["amd64", "arm64", "arm", "ppc64le", "s390x", "riscv64"]
BuildMethod = Literal["docker", "kaniko", "buildx", "packer", "nix", "paketo"]
BUILD_METHODS: tuple[str, ...] = ("docker", "kaniko", "buildx", "packer", "nix", "paketo")
Infrastructure = Literal["auto", "kubernetes", "build_nodes"]


class Metadata(Strict):
    name: DNSName
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict)
    annotations: dict[LabelKey, str] = Field(default_factory=dict)


class Taint(Strict):
    key: LabelKey
    value: LabelValue = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


def at(path: str, message: str) -> ValueError:
    """An error for a model validator that belongs to a field below the model.

    Pydantic places model-validator errors on the model itself; the loader moves them to
    ``path`` (relative, dotted, ``[i]`` for list items) so the line number is the field's.
    """
    return ValueError(f"@{path}|{message}")
