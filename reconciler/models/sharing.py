"""Equal status blocks are one object.

The reconciler writes the same selection (reason, alternatives) and the same conditions into
the status of many builds: at 10,000 builds over 200 pools, 100,000 alternatives hold about
2,000 different values, and 10,000 selections about 1,000. A model validated from plain data
equal to what an earlier one was validated from is that earlier (frozen) model, so the
loader keeps each value once instead of once per build.

Only plain data is recognised (text, floats, None, and mappings and lists of them, with the
same types in the same order): validating such data gives the same model every time, so
taking the earlier one skips nothing that could fail. Anything else (an int where a float
is expected, a bool, an invalid value) is validated as usual, and a failure is never kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from .common import Strict

_NOT_PLAIN = object()
_SHARED: dict[tuple, Any] = {}
# Values kept for sharing, at most; the table starts again when full (sharing is an
# optimisation: a model validated twice is still correct).
SHARED_MAX = 50_000


def plain_key(value: Any) -> Any:
    """A hashable key, equal only for equal plain data of the same types; ``_NOT_PLAIN``
    when ``value`` is anything else."""
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is float:
        # 0.0 == -0.0 and both hash alike: keep the sign apart (NaN never equals: no sharing).
        return value if value else (float, str(value))
    if kind is dict:
        out: list = [dict]
        for k, v in value.items():
            if type(k) is not str:
                return _NOT_PLAIN
            v = plain_key(v)
            if v is _NOT_PLAIN:
                return _NOT_PLAIN
            out.append(k)
            out.append(v)
        return tuple(out)
    if kind is list:
        out = [list]
        for v in value:
            v = plain_key(v)
            if v is _NOT_PLAIN:
                return _NOT_PLAIN
            out.append(v)
        return tuple(out)
    return _NOT_PLAIN


class Shared(Strict):
    """A frozen model of which equal values validated from plain data are one object."""

    @model_validator(mode="wrap")
    @classmethod
    def _one_of_each(cls, data: Any, handler: Any) -> Any:
        if type(data) is not dict:
            return handler(data)
        key = plain_key(data)
        if key is _NOT_PLAIN:
            return handler(data)
        key = (cls, key)
        model = _SHARED.get(key)
        if model is None:
            model = handler(data)
            if len(_SHARED) >= SHARED_MAX:
                _SHARED.clear()
            _SHARED[key] = model
        return model


def shared_count() -> int:
    """How many values are kept for sharing (for tests)."""
    return len(_SHARED)
