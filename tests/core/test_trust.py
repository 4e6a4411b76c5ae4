"""Trust list files: every problem reported with its $.path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ibb.core.trust import TrustListError, load_trust_list


def test_problems_are_reported_with_paths(tmp_path: Path) -> None:
    f = tmp_path / "t.toml"
    f.write_text('[trust_list]\nname = "x"\n[[roots]]\ncertificate = "missing.pem"\n'
                 '[[officials]]\nname = "o"\nissuing_entity = "NOPE"\nsha256 = "abc"\nvalid_from = 2020-01-01T00:00:00Z\nbogus = 1\n')
    with pytest.raises(TrustListError) as exc:
        load_trust_list(f)
    text = "\n".join(exc.value.lines())
    assert "$.officials[0]: unknown key(s) bogus" in text
    assert "$.officials[0].sha256: must be a SHA-256 fingerprint: 64 hexadecimal digits" in text
    f.write_text('[trust_list]\nname = "x"\n[[roots]]\ncertificate = "missing.pem"\n'
                 '[[officials]]\nname = "o"\nissuing_entity = "NOPE"\nsha256 = "' + "a" * 64 + '"\nvalid_from = 2020-01-01T00:00:00\n')
    with pytest.raises(TrustListError, match=r"\$.officials\[0\].valid_from: .* has no time zone"):
        load_trust_list(f)
    f.write_text('[trust_list]\nname = "x"\n[[roots]]\ncertificate = "missing.pem"\n'
                 '[[officials]]\nname = "o"\nissuing_entity = "NOPE"\nsha256 = "' + "a" * 64 + '"\nvalid_from = 2020-01-01\n')
    with pytest.raises(TrustListError) as exc:
        load_trust_list(f)
    text = "\n".join(exc.value.lines())
    assert "$.roots[0].certificate: cannot read" in text and "$.officials[0].issuing_entity: 'NOPE'" in text
