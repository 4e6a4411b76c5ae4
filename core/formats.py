"""The message-format contract: how a plugin maps the canonical model to the wire and back."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs

from .model import Certificate


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
    """

    name: ClassVar[str]
    content_type: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        self.options = options if options is not None else self.Options()

    def render(self, certificate: Certificate) -> bytes:
        raise NotImplementedError

    def parse(self, data: bytes) -> Certificate:
        raise NotImplementedError
