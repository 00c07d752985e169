"""The result of selection: a ``Decision`` (what becomes ``status.selection``) and its parts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

State = Literal["Admitted", "Queued", "Rejected"]


@dataclass(frozen=True)
class Actor:
    """Who asked for the build, as far as selection cares: an identity and its permissions."""

    identity: str | None = None
    permissions: frozenset[str] = frozenset()
    # How the identity was found, for people reading explain ("last commit author of the file").
    source: str = ""

    @property
    def name(self) -> str:
        return self.identity or "the requester"

    def holds(self, permission: str) -> bool:
        return permission in self.permissions


@dataclass(frozen=True)
class Step:
    """One step of the path through the decision tree: the question and what it answered."""

    rule: str
    outcome: str

    def to_dict(self) -> dict:
        return {"rule": self.rule, "outcome": self.outcome}


@dataclass(frozen=True)
class Alternative:
    provider: str
    pool: str
    reason: str
    score: float | None = None  # set when the pool fits and lost on the order; None when excluded
    rule: str | None = None  # the rule that excluded it (None when it fits)

    def to_dict(self) -> dict:
        """The ``status.selection.alternatives[]`` shape."""
        return {"provider": self.provider, "pool": self.pool, "reason": self.reason, "score": self.score}


class Alternatives(Sequence[Alternative]):
    """A tuple of Alternatives built on first use.

    Selecting 10,000 builds over 200 pools would otherwise spend most of its time writing
    two million "why not this pool" sentences that nobody reads; they are written when
    ``explain`` or a test looks at them, and then kept.

    ``first(n)`` (what a build's status holds: the closest few) writes only those ``n`` when
    the whole list was not built yet, and keeps nothing: a pass that writes 10,000 statuses
    would otherwise hold all two million sentences until it ends. ``head(n)`` makes them:
    the first ``n`` of the whole list.
    """

    __slots__ = ("_make", "_items", "_head")

    def __init__(self, items: Sequence[Alternative] | Callable[[], Sequence[Alternative]] = (),
                 head: Callable[[int], Sequence[Alternative]] | None = None) -> None:
        if callable(items):
            self._make, self._items = items, None
        else:
            self._make, self._items = None, tuple(items)
        self._head = head if self._items is None else None

    def first(self, n: int) -> tuple[Alternative, ...]:
        """The first ``n``, without building (or keeping) the rest."""
        if self._items is None and self._head is not None:
            return tuple(self._head(n))[:n]
        return self._all()[:n]

    def _all(self) -> tuple[Alternative, ...]:
        if self._items is None:
            self._items = tuple(self._make())
            self._make = self._head = None
        return self._items

    def __getitem__(self, index):  # type: ignore[override]
        return self._all()[index]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Alternative]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Alternatives, tuple, list)):
            return self._all() == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"Alternatives({list(self._all())!r})" if self._items is not None else "Alternatives(<not built yet>)"


@dataclass(frozen=True)
class Decision:
    state: State
    infrastructure: Literal["kubernetes", "build_nodes"] | None
    provider: str | None
    pool: str | None
    reason: str
    confidence: float
    alternatives: Alternatives
    path: tuple[Step, ...]
    score: float | None = None  # the chosen pool's score (see selection.scoring)

    @property
    def admitted(self) -> bool:
        return self.state == "Admitted"

    def to_status(self, max_alternatives: int | None = None) -> dict:
        """The ``status.selection`` block (reconciler.models.status.Selection).

        ``max_alternatives`` keeps the first N (pools that fit come before excluded ones):
        what is written back to a build's file; ``explain`` shows every one.

        Equal blocks (and equal alternatives in them) are the same dicts: 10,000 builds have
        about 1,000 different blocks, and the loop keeps every build's last status. Treat
        the result as read-only."""
        alternatives = self.alternatives
        if max_alternatives is not None:
            first = getattr(alternatives, "first", None)
            alternatives = first(max_alternatives) if first is not None else alternatives[:max_alternatives]
        alts = [_shared(("alternative", a.provider, a.pool, a.reason, a.score), a.to_dict) for a in alternatives]
        # The alternatives' ids stand for them: the table holds every dict its keys name.
        key = ("selection", self.infrastructure, self.provider, self.pool, self.reason, self.confidence,
               *map(id, alts))
        return _shared(key, lambda: {
            "infrastructure": self.infrastructure,
            "provider": self.provider,
            "pool": self.pool,
            "reason": self.reason,
            "confidence": self.confidence,
            "alternatives": alts,
        })

    def to_dict(self) -> dict:
        """Everything, for ``explain --output json`` and scripts."""
        return {
            "state": self.state,
            "infrastructure": self.infrastructure,
            "provider": self.provider,
            "pool": self.pool,
            "reason": self.reason,
            "confidence": self.confidence,
            "score": self.score,
            "alternatives": [dict(a.to_dict(), rule=a.rule) for a in self.alternatives],
            "path": [s.to_dict() for s in self.path],
        }


_SHARED: dict[tuple, dict] = {}
SHARED_MAX = 50_000  # blocks and alternatives kept for sharing; the table starts again when full


def _shared(key: tuple, make: Callable[[], dict]) -> dict:
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = make()
    return found
