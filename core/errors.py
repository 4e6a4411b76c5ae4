"""The error tree. Every error ibb raises on purpose derives from :class:`IbbError`.

The CLI prints an ``IbbError`` as a clean message (no traceback) and exits non-zero;
the gateway turns it into an HTTP problem response. Anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Iterable


class IbbError(Exception):
    """Root of every error ibb raises on purpose."""

    exit_code = 1
    http_status = 500
    """Status the gateway answers with when this error ends a request."""

    def lines(self) -> list[str]:
        """The message as lines, for the CLI."""
        return [str(self)]


class InvalidInput(IbbError):
    """Input failed validation. Carries every problem found, each as ``where: what``."""

    http_status = 422

    def __init__(self, problems: Iterable[str], source: str | None = None):
        self.problems = tuple(problems)
        self.source = source
        super().__init__("; ".join(self.lines()))

    def lines(self) -> list[str]:
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + p for p in self.problems]


class ProfileError(InvalidInput):
    """A profile file is invalid (syntax, unknown key, bad value, unknown plugin)."""


class CertificateError(InvalidInput):
    """A certificate (canonical JSON or wire message) is invalid."""


class RuleViolation(InvalidInput):
    """A certificate breaks one or more business rules of its profile."""


class UnknownName(IbbError):
    """A name looked up in a registry or store does not exist. Suggests close matches."""

    http_status = 404

    def __init__(self, kind: str, name: str, known: Iterable[str]):
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=3)
        msg = f"unknown {kind} {name!r}"
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        msg += f" (known: {', '.join(self.known) or 'none'})"
        super().__init__(msg)


class PluginError(IbbError):
    """A plugin is broken: duplicate name, hook without spec, bad registration."""


class TransportError(IbbError):
    """Sending or receiving over a transport failed.

    ``retryable`` says whether the same message may succeed later (partner down,
    time-out) or never will (refused as invalid).
    """

    http_status = 502

    def __init__(self, message: str, *, retryable: bool):
        self.retryable = retryable
        super().__init__(message)


class StoreError(IbbError):
    """The store cannot be opened or is in an unexpected state."""


class Refused(IbbError):
    """An inbound request is refused before its content is looked at (who sent it, how)."""

    def __init__(self, message: str, http_status: int):
        self.http_status = http_status
        super().__init__(message)
