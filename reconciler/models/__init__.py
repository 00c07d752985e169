"""Typed models of the repository kinds (the edge where YAML becomes data).

Pydantic v2, strict: unknown fields are errors and nothing is coerced silently
(``"yes"`` is not ``True``, ``1`` is not ``"1"``).
"""

from .build import BuildRequest, BuildSpec, Requirements
from .common import API_VERSION, BUILD_METHODS
from .factory import PERMISSIONS, FactoryConfig
from .pool import Pool
from .provider import AUTH_METHODS_BY_TYPE, PROVIDER_TYPES, Provider
from .status import PHASES, BuildStatus, Condition, Selection

# kind -> model, in the order they are documented.
KINDS = {
    "FactoryConfig": FactoryConfig,
    "Provider": Provider,
    "Pool": Pool,
    "BuildRequest": BuildRequest,
}

__all__ = [
    "API_VERSION",
    "AUTH_METHODS_BY_TYPE",
    "BUILD_METHODS",
    "KINDS",
    "PERMISSIONS",
    "PHASES",
    "PROVIDER_TYPES",
    "BuildRequest",
    "BuildSpec",
    "BuildStatus",
    "Condition",
    "FactoryConfig",
    "Pool",
    "Provider",
    "Requirements",
    "Selection",
]
