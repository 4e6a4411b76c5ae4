"""wco-eco-xml: lossless round trip, schema checked on render and parse, hardened parsing."""

from __future__ import annotations

import pytest

from ibb.core.errors import CertificateError
from ibb.core.plugins import Plugins
from ibb.core.samples import sample_certificate
from ibb.core.xml import XmlRefused
from ibb.plugins.wco_xml.format import WcoEcoXml


def test_registered_and_round_trips_losslessly() -> None:
    plugins = Plugins(entrypoints=False)
    f = plugins.formats.get("wco-eco-xml")()
    for items in (1, 5):
        cert = sample_certificate(items=items)
        assert f.parse(f.render(cert)) == cert


def test_parse_checks_the_schema_and_refuses_dtds() -> None:
    f = WcoEcoXml()
    doc = f.render(sample_certificate())
    with pytest.raises(CertificateError, match="HSCode"):
        f.parse(doc.replace(b"<eco:HSCode>850760", b"<eco:HSCode>85.07", 1))
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    with pytest.raises(XmlRefused, match="DTD"):
        f.parse(bomb)
    with pytest.raises(XmlRefused, match="limit"):
        WcoEcoXml(WcoEcoXml.Options(max_bytes=100)).parse(doc)
