"""Realistic sample certificates (Korea -> China) for the demo, tests and benchmarks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from .model import Address, Certificate, Declaration, GoodsItem, Party, SignatureInfo, TransportDetails

_GOODS = (
    ("850760", "Lithium-ion battery modules for electric vehicles", "PSR", "CT", Decimal("120"), "C62", Decimal("1450.5")),
    ("870899", "Steering gear parts for motor vehicles", "CTH", "PK", Decimal("800"), "C62", Decimal("960.25")),
    ("390120", "Polyethylene granules, specific gravity >= 0.94", "RVC", "BG", Decimal("20000"), "KGM", Decimal("20400")),
    ("851713", "Smartphones", "CTSH", "CT", Decimal("2500"), "C62", Decimal("610.8")),
    ("030389", "Frozen hairtail fish, whole", "WO", "CT", Decimal("5000"), "KGM", Decimal("5300")),
)


def sample_certificate(cert_id: str = "KR-2026-000001", items: int = 3, issue_date: dt.date | None = None) -> Certificate:
    """A fully filled, valid certificate of origin with ``items`` goods items."""
    issued = issue_date or dt.date.today()
    goods = []
    for n in range(1, items + 1):
        hs, text, criterion, pkg, qty, unit, mass = _GOODS[(n - 1) % len(_GOODS)]
        goods.append(
            GoodsItem(
                sequence=n, hs_code=hs, description=text, origin_criterion=criterion, origin_country="KR",
                package_count=10 * n, package_kind=pkg, marks=f"HMM/BUSAN/{n:03d}", quantity=qty, quantity_unit=unit,
                gross_mass_kg=mass, invoice_number=f"INV-{cert_id}-{n}", invoice_date=issued - dt.timedelta(days=2),
                fob_value=Decimal("1250.00") * n, currency="USD",
            )
        )
    return Certificate(
        id=cert_id,
        type="preferential",
        agreement="Korea-China FTA",
        issue_date=issued,
        issue_place="Seoul",
        valid_until=issued + dt.timedelta(days=364),
        exporter=Party(
            name="Hanbit Energy Co., Ltd.", country="KR", id="KR-BRN-2148812345",
            address=Address(country="KR", line="25 Teheran-ro 87-gil, Gangnam-gu", city="Seoul", postcode="06164"),
        ),
        importer=Party(
            name="Shanghai Donghai Trading Co., Ltd.", country="CN", id="CN-USCC-91310000MA1FL4XQ2B",
            address=Address(country="CN", line="188 Yincheng Road, Pudong", city="Shanghai", postcode="200120"),
        ),
        issuing_authority=Party(
            name="Korea Chamber of Commerce and Industry", country="KR",
            address=Address(country="KR", line="39 Sejong-daero, Jung-gu", city="Seoul", postcode="04513"),
        ),
        producers=(Party(name="Hanbit Cell Manufacturing Co.", country="KR", address=Address(country="KR", city="Cheongju")),),
        export_country="KR",
        import_country="CN",
        items=tuple(goods),
        transport=TransportDetails(
            mode="sea", means="HMM ALGECIRAS 0042W", departure_date=issued + dt.timedelta(days=1),
            loading_place="Busan, KR", discharge_place="Shanghai, CN",
        ),
        remarks="Issued electronically under the KCS-GACC origin data exchange.",
        exporter_declaration=Declaration(
            place="Seoul", date=issued, signatory="Kim Min-jun, Export Manager",
            text="The undersigned declares that the goods above meet the origin requirements of the Korea-China FTA.",
        ),
        certification=Declaration(place="Seoul", date=issued, signatory="Lee Seo-yeon, Certification Officer"),
        signatures=(
            SignatureInfo(role="exporter", signer="Kim Min-jun", signed_at=dt.datetime.combine(issued, dt.time(9, 30), dt.timezone.utc)),
        ),
    )
