"""The message-format contract: how a plugin maps the canonical model to the wire and back."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar

import attrs

from .model import Certificate

if TYPE_CHECKING:
    from .keys import Credentials
    from .xmldsig import VerificationReport


@attrs.frozen
class NoOptions:
    """Options class for a plugin that takes none: any key in the profile is an error."""


class MessageFormat:
    """Base class of message-format plugins.

    A subclass sets ``name`` (the value of ``data_cluster.format`` in a profile),
    ``content_type`` (sent over the wire, checked on receipt) and ``Options`` (a frozen
    attrs class for ``[data_cluster.options]``, validated when the profile loads).

    ``render`` must produce bytes that ``parse`` turns back into an equal certificate.
    Both raise :class:`ibb.core.errors.CertificateError` with ``$.path`` messages on
    invalid data; neither may raise anything else for bad input.

    A format that carries digital signatures sets ``supports_signatures = True``, lists
    the roles it has a signature place for in ``signature_roles`` (in signing order), and
    implements ``sign`` and ``verify``. A profile may only list ``data_cluster.signatures``
    when its format supports signatures.
    """

    name: ClassVar[str]
    content_type: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    supports_signatures: ClassVar[bool] = False
    """True when documents of this format carry XML (or other) digital signatures."""
    signature_roles: ClassVar[tuple[str, ...]] = ()
    """Roles (profile entity roles) that can sign a document of this format, in signing order."""

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    @classmethod
    def check_profile(cls, options: Any, signatures: tuple[str, ...]) -> list[str]:
        """Problems with this format's ``options`` in a profile whose ``data_cluster.signatures``
        are ``signatures``, each as ``$.path: message``; called when the profile loads, so that
        ``ibb profiles check`` and ``ibb serve`` find them before any certificate does."""
        return []

    def render(self, certificate: Certificate) -> bytes:
        raise NotImplementedError

    def parse(self, data: bytes) -> Certificate:
        raise NotImplementedError

    def sign(self, document: bytes, role: str, credentials: Credentials, *, signing_time: dt.datetime | None = None) -> bytes:
        """Return ``document`` (as rendered or already partly signed) with ``role``'s signature added.

        Signatures are added in ``signature_roles`` order; a later signature covers the
        earlier ones. Raises :class:`ibb.core.errors.InvalidInput` (``SigningError``) when
        the document cannot be signed as asked: unknown role, already signed, algorithm
        not allowed by the profile, or a document that is not of this format.
        """
        raise NotImplementedError(f"format {self.name!r} does not carry signatures")

    def verify(self, document: bytes, *, now: dt.datetime | None = None) -> VerificationReport:
        """Check the schema, every signature and the trust list (from the format options).

        Never raises for a bad document: every problem is in the returned report, per role,
        with a stable code. Raises only for configuration problems (no trust list, schema
        file missing).
        """
        raise NotImplementedError(f"format {self.name!r} does not carry signatures")
