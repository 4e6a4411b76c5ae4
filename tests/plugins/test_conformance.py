"""Every built-in message format passes the conformance suite plugin authors run (ibb.core.testing.FormatConformance)."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from ibb.core.model import Address, Party
from ibb.core.samples import sample_certificate
from ibb.core.testing import FormatConformance

ALADI = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "aladi"


class TestUncefactJsonConformance(FormatConformance):
    format_name = "uncefact-json"


class TestWcoEcoXmlConformance(FormatConformance):
    format_name = "wco-eco-xml"


class TestAladiCodConformance(FormatConformance):
    format_name = "aladi-cod"
    lossless = False  # a COD has no place for some canonical fields (listed in the plugin docstring)

    def options(self):
        from ibb.plugins.aladi_cod.format import Options

        if not (ALADI / "cod_ver_4.1.0.xsd").is_file():
            pytest.skip(f"ALADI schemas not found at {ALADI} (shared fixtures sit beside the repository in CI)")
        return Options(xsd=ALADI / "cod_ver_4.1.0.xsd", agreement="A14", form="FormA14")

    def certificates(self):
        out = []
        for n, items in ((1, 1), (2, 4)):
            c = sample_certificate(f"ARCIRA1426000001{n:02d}00", items=items)
            out.append(attrs.evolve(
                c, agreement="ACE 14 Argentina-Brasil", export_country="AR", import_country="BR", producers=(),
                exporter=attrs.evolve(c.exporter, country="AR", address=Address(country="AR", line="Av. Corrientes 1234", city="Buenos Aires")),
                importer=attrs.evolve(c.importer, country="BR", address=Address(country="BR", line="Rua Augusta 500", city="Sao Paulo")),
                issuing_authority=Party(name="Camara de Industria", country="AR", id="CIR",
                                        address=Address(country="AR", line="Av. de Mayo 1147", city="Buenos Aires")),
                items=tuple(attrs.evolve(i, origin_country="AR") for i in c.items),
            ))
        return out


def test_the_suite_fails_a_format_that_leaks_other_exceptions() -> None:
    import json

    import pluggy

    from ibb.core.formats import MessageFormat
    from ibb.core.model import certificate_from_dict, certificate_to_json

    class Leaky(MessageFormat):
        name = "leaky"
        content_type = "application/x-leaky"

        def render(self, certificate):
            return certificate_to_json(certificate).encode()

        def parse(self, data):
            return certificate_from_dict(json.loads(data))  # a JSONDecodeError escapes on bad input

    class LeakyPlugin:
        @pluggy.HookimplMarker("ibb")
        def ibb_register_formats(self, register):
            register("leaky", Leaky)

    suite = type("LeakySuite", (FormatConformance,), {"format_name": "leaky", "plugins_extra": (LeakyPlugin(),)})()
    suite.test_declares_the_contract()
    suite.test_round_trip()
    with pytest.raises(json.JSONDecodeError):
        suite.test_bad_input_raises_only_certificate_error()
