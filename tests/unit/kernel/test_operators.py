"""Which operator a card or an IoT number belongs to."""

from __future__ import annotations

import pytest

from chalicelib.kernel.operators import Operator, iccid_operator, msisdn_operator


@pytest.mark.parametrize(
    ("iccid", "operator"),
    [
        ("898600D61A1B2C3D4E5F", Operator.CHINA_MOBILE),
        ("89860112345678901237", Operator.CHINA_UNICOM),
        ("8986031234567890123", Operator.CHINA_TELECOM),
        ("898615123456789012", Operator.CHINA_BROADNET),
    ],
)
def test_the_issuer_code_after_8986_names_the_operator(iccid: str, operator: Operator) -> None:
    assert iccid_operator(iccid) is operator


@pytest.mark.parametrize("iccid", ["89860512345678901234", "89440012345678901234", ""])
def test_an_unknown_issuer_or_a_foreign_iccid_has_no_operator(iccid: str) -> None:
    assert iccid_operator(iccid) is None


@pytest.mark.parametrize(
    ("msisdn", "operator"),
    [
        ("1440012345678", Operator.CHINA_MOBILE),
        ("1480012345678", Operator.CHINA_MOBILE),
        ("1064812345678", Operator.CHINA_MOBILE),
        ("1460012345678", Operator.CHINA_UNICOM),
        ("1064612345678", Operator.CHINA_UNICOM),
        ("1410012345678", Operator.CHINA_TELECOM),
        ("1064912345678", Operator.CHINA_TELECOM),
    ],
)
def test_the_iot_segment_names_the_operator(msisdn: str, operator: Operator) -> None:
    assert msisdn_operator(msisdn) is operator


def test_a_number_outside_the_iot_segments_has_no_operator() -> None:
    assert msisdn_operator("1380012345678") is None
