"""The exception hierarchy.

Every error the reconciler raises on purpose derives from ``FactoryError``. The split that
matters to callers is *transient* (worth retrying: timeouts, 5xx, 429, a rejected push) versus
*terminal* (retrying cannot help: invalid input, 403, a tampered ciphertext). Loops retry the
first kind with backoff and report the second.

Messages must never carry credentials: build them from names and reasons, not from values.
"""

from __future__ import annotations


class FactoryError(Exception):
    """Base of every error the reconciler raises deliberately."""

    transient = False


class TransientError(FactoryError):
    """A failure that may go away by itself; callers retry with backoff."""

    transient = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TerminalError(FactoryError):
    """A failure that retrying will not fix; callers report it."""


class UsageError(TerminalError):
    """The command was called wrongly (no such path, bad flag combination)."""


class SourceError(FactoryError):
    """Reading the desired state from Git or a directory failed as a whole."""


class SourceUnavailable(SourceError, TransientError):
    """The remote could not be reached."""


class SealingError(TerminalError):
    """A sealed credential could not be opened (wrong key, tampered, bound elsewhere)."""
