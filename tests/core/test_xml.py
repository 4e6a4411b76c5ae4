"""The hardened parser refuses DTDs, entities, oversize documents, and never reaches the network."""

from __future__ import annotations

import pytest

from ibb.core.xml import XmlRefused, parse_xml


@pytest.mark.parametrize("doc, reason", [
    (b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DTD"),
    (b'<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>', "DTD"),
    (b"<x><y></x>", "not well-formed"),
    (b"", "not well-formed"),
])
def test_refused_with_reason(doc: bytes, reason: str) -> None:
    with pytest.raises(XmlRefused, match=reason):
        parse_xml(doc)


def test_size_limit_and_comments_dropped() -> None:
    with pytest.raises(XmlRefused, match="limit is 10"):
        parse_xml(b"<x>0123456789</x>", max_bytes=10)
    root = parse_xml(b"<x>Foo<!-- hidden -->Bar<?pi x?></x>")
    assert root.text == "FooBar"
