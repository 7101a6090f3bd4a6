"""Identity and number validators (SPEC §2). Check digits here are computed independently of the module."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.kernel import validators as v
from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.operators import Operator
from chalicelib.kernel.personal import IdType
from chalicelib.kernel.validators import KINDS, Validated, validate

TODAY = date(2025, 6, 1)

# --------------------------------------------------------------------------- independent check digits

GB11643_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
GB11643_CHECK = "10X98765432"


def gb11643_check(body17: str) -> str:
    return GB11643_CHECK[sum(int(c) * w for c, w in zip(body17, GB11643_WEIGHTS, strict=True)) % 11]


VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"
VIN_TRANSLIT = {
    **{str(d): d for d in range(10)},
    **{"A": 1, "B": 2, "C": 3, "D": 4, "E": 5, "F": 6, "G": 7, "H": 8},
    **{"J": 1, "K": 2, "L": 3, "M": 4, "N": 5, "P": 7, "R": 9},
    **{"S": 2, "T": 3, "U": 4, "V": 5, "W": 6, "X": 7, "Y": 8, "Z": 9},
}
VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def vin_check(vin17: str) -> str:
    r = sum(VIN_TRANSLIT[c] * w for c, w in zip(vin17, VIN_WEIGHTS, strict=True)) % 11
    return "X" if r == 10 else str(r)


def with_vin_check(vin17: str) -> str:
    return vin17[:8] + vin_check(vin17) + vin17[9:]


def luhn_complete(body: str) -> str:
    """Append the Luhn digit to ``body``."""
    total = 0
    for i, c in enumerate(reversed(body)):
        d = int(c)
        if i % 2 == 0:  # these get doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_check(body17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * pow(3, i, 31) for i, c in enumerate(body17))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def resident(body17: str) -> str:
    return body17 + gb11643_check(body17)


def code_of(kind: str, value: str, **kwargs: object) -> str:
    with pytest.raises(InvalidField) as caught:
        validate(kind, value, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_independent_generators_agree_with_known_values() -> None:
    # Given the known good values from SPEC §2, When recomputed by the test's own code, Then they match
    assert resident("11010519491231002") == "11010519491231002X"
    assert resident("81000019980902013") == "81000019980902013X"
    assert resident("93268219850101001") == "932682198501010017"
    assert with_vin_check("JHMCM56557C404453") == "JHMCM56557C404453"
    assert with_vin_check("1M8GDM9AXKP042788") == "1M8GDM9AXKP042788"
    assert uscc_check("91350100M000100Y4") == "3"
    assert uscc_check("91350000611007201") == "R"
    assert luhn_complete("7992739871") == "79927398713"


# --------------------------------------------------------------------------- resident ID and permits


@pytest.mark.parametrize(
    ("kind", "value", "birth_date", "sex", "region"),
    [
        ("resident_id", "11010519491231002X", "1949-12-31", "F", "110105"),
        ("hk_macau_permit", "81000019980902013X", "1998-09-02", "M", "810000"),
        ("taiwan_permit", resident("83000019980902014"), "1998-09-02", "F", "830000"),
        ("hk_macau_permit", resident("82000020010101001"), "2001-01-01", "M", "820000"),
        ("resident_id", resident("71000019800101003"), "1980-01-01", "M", "710000"),
    ],
)
def test_gb11643_known_good(kind: str, value: str, birth_date: str, sex: str, region: str) -> None:
    # When a known good number is validated
    result = validate(kind, value, today=TODAY)
    # Then it is valid without review, with the details decoded from it
    assert result == Validated(
        kind=kind, value=value, details={"birth_date": birth_date, "sex": sex, "region": region}
    )


def test_resident_id_normalises_lower_case_x_spaces_and_full_width() -> None:
    # Given the same number typed in three sloppy ways, Then each normalises to the canonical form
    for typed in (" 11010519491231002x ", "110105 19491231 002X", "１１０１０５１９４９１２３１００２ｘ"):
        assert validate("resident_id", typed).value == "11010519491231002X"


def test_resident_id_converts_15_digit_legacy_number() -> None:
    # Given a 15-digit legacy number (YYMMDD, no check char)
    # When it is validated, Then "19" is inserted and the check char computed
    result = validate("resident_id", "110105491231002")
    assert result.value == "11010519491231002X"
    assert result.details["birth_date"] == "1949-12-31"
    assert validate("resident_id", "320311770706001").value == resident("32031119770706001")


def test_legacy_number_with_impossible_date_is_refused() -> None:
    assert code_of("resident_id", "110105490230002") == "resident_id.birth_date"


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("resident_id", "110105194912310021", "resident_id.check_char"),
        ("resident_id", "110105194902300020", "resident_id.birth_date"),
        ("resident_id", "11010519491231002", "resident_id.length"),
        ("resident_id", "1101051949123100200", "resident_id.length"),
        ("resident_id", "", "resident_id.length"),
        ("resident_id", "11010519491231X02X", "resident_id.format"),
        ("resident_id", "1101051949123100A", "resident_id.length"),
        ("resident_id", "11010519491231002Y", "resident_id.format"),
        ("resident_id", "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "resident_id.format"),  # Arabic-Indic digits
        ("resident_id", resident("16010519491231002"), "resident_id.province"),
        ("resident_id", resident("01010519491231002"), "resident_id.province"),
        ("hk_macau_permit", "81000019980902013", "hk_macau_permit.length"),
        ("hk_macau_permit", "8100001998090201XX", "hk_macau_permit.format"),
        ("hk_macau_permit", "11010519491231002X", "hk_macau_permit.province"),
        ("hk_macau_permit", resident("83000019980902014"), "hk_macau_permit.province"),
        ("hk_macau_permit", "810000199809020130", "hk_macau_permit.check_char"),
        ("hk_macau_permit", resident("81000019980230013"), "hk_macau_permit.birth_date"),
        ("taiwan_permit", "8300001998090201", "taiwan_permit.length"),
        ("taiwan_permit", "83000019980902A140", "taiwan_permit.format"),
        ("taiwan_permit", "81000019980902013X", "taiwan_permit.province"),
        ("taiwan_permit", "830000199809020140", "taiwan_permit.check_char"),
        ("taiwan_permit", resident("83000020991231014"), "taiwan_permit.birth_date"),
    ],
)
def test_gb11643_refusals(kind: str, value: str, code: str) -> None:
    # When a bad number is validated, Then it is refused with the documented code
    assert code_of(kind, value, today=TODAY) == code


@pytest.mark.parametrize(
    ("value", "points_to"),
    [
        ("81000019980902013X", "hk_macau_permit"),
        (resident("82000020010101001"), "hk_macau_permit"),
        (resident("83000019980902014"), "taiwan_permit"),
        ("932682198501010017", "foreign_permanent_id"),
    ],
)
def test_resident_id_refuses_permit_prefixes_and_points_to_the_permit_kind(
    value: str, points_to: str
) -> None:
    # Given a valid permit / foreign ID number entered as a resident ID
    with pytest.raises(InvalidField) as caught:
        validate("resident_id", value, field="owner.id_number")
    # Then it is refused as a province error whose message names the right document type
    error = caught.value
    assert (error.code, error.field) == ("resident_id.province", "owner.id_number")
    assert points_to in error.message_en
    assert "请选择证件类型" in error.message_zh


def test_unknown_county_goes_to_review_not_refusal() -> None:
    # Given a number whose county 110199 is unknown to stdnum (stdnum 2.2 raises KeyError for it)
    value = resident("11019919491231000")
    # When validated, Then it is valid but flagged for manual review
    result = validate("resident_id", value)
    assert (result.value, result.review, result.review_code) == (value, True, "resident_id.unknown_county")
    # And an unknown province-level code (119999) likewise
    assert validate("resident_id", resident("11999919491231000")).review_code == "resident_id.unknown_county"


def test_permit_with_non_territory_region_goes_to_review() -> None:
    # Permits carry region 810000/820000/830000; anything else under 81 is reviewed, not refused
    result = validate("hk_macau_permit", resident("81010119980902013"))
    assert (result.review, result.review_code) == (True, "hk_macau_permit.unknown_county")


def test_county_created_after_birth_is_known() -> None:
    # Given 440305 (深圳南山区, code in use since 1983) and a person born in 1960 who lives there
    # Then it is not reviewed: the code is the registration address when the number was assigned
    # (stdnum's get_birth_place would call it unknown because it did not exist in 1960)
    assert not validate("resident_id", resident("44030519600101001")).review


def test_county_abolished_before_birth_goes_to_review() -> None:
    # Given 110103 (崇文区, abolished 2010): fine for someone born in 2000, suspicious for 2015
    assert not validate("resident_id", resident("11010320000101001"), today=TODAY).review
    late = validate("resident_id", resident("11010320150101001"), today=TODAY)
    assert late.review_code == "resident_id.unknown_county"


def test_birth_date_in_future_is_refused_and_today_is_accepted() -> None:
    # Given a person born on 2025-06-02 and today = 2025-06-01, Then the date is refused
    assert code_of("resident_id", resident("11010520250602001"), today=TODAY) == "resident_id.birth_date"
    # And a baby born today is accepted
    assert validate("resident_id", resident("11010520250601001"), today=TODAY).details["sex"] == "M"


def test_birth_date_before_1900_is_refused() -> None:
    assert code_of("resident_id", resident("11010518991231002")) == "resident_id.birth_date"
    assert validate("resident_id", resident("11010519000101002")).details["birth_date"] == "1900-01-01"


def test_default_today_is_used_when_not_given() -> None:
    # A birth date far in the future is refused with the default clock
    assert code_of("resident_id", resident("11010520990101002")) == "resident_id.birth_date"


# --------------------------------------------------------------------------- foreign permanent residence ID


def test_foreign_permanent_id_2023() -> None:
    result = validate("foreign_permanent_id", "932682198501010017")
    assert result.value == "932682198501010017"
    assert result.details == {
        "format": "2023",
        "birth_date": "1985-01-01",
        "sex": "M",
        "province": "32",
        "nationality": "682",
    }
    assert not result.review


def test_foreign_permanent_id_2017() -> None:
    result = validate("foreign_permanent_id", "usa110085010101")
    assert (result.value, result.details) == ("USA110085010101", {"format": "2017", "nationality": "USA"})


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("932682198501010018", "foreign_permanent_id.check_char"),
        (resident("93268219850230001"), "foreign_permanent_id.birth_date"),
        (resident("91668219850101001"), "foreign_permanent_id.province"),
        ("11010519491231002X", "foreign_permanent_id.format"),
        ("9326821985010100X7", "foreign_permanent_id.format"),
        ("US1110085010101", "foreign_permanent_id.format"),
        ("USA11008501010", "foreign_permanent_id.length"),
        ("9326821985010100171", "foreign_permanent_id.length"),
    ],
)
def test_foreign_permanent_id_refusals(value: str, code: str) -> None:
    assert code_of("foreign_permanent_id", value) == code


# --------------------------------------------------------------------------- travel permits and passports


@pytest.mark.parametrize(
    ("kind", "typed", "value", "details"),
    [
        ("hk_macau_pass", "h12345678", "H12345678", {"region": "HK"}),
        ("hk_macau_pass", "M1234567890", "M1234567890", {"region": "MO"}),
        ("taiwan_pass", " 12345678 ", "12345678", {}),
        ("passport", "e1234567 8", "E12345678", {}),
        ("passport", "AB123", "AB123", {}),
        ("passport", "A" * 17, "A" * 17, {}),
    ],
)
def test_travel_documents_good(kind: str, typed: str, value: str, details: dict[str, str]) -> None:
    result = validate(kind, typed)
    assert (result.value, result.details) == (value, details)


@pytest.mark.parametrize(
    ("kind", "value", "code"),
    [
        ("hk_macau_pass", "H1234567", "hk_macau_pass.format"),
        ("hk_macau_pass", "H123456789", "hk_macau_pass.format"),
        ("hk_macau_pass", "X12345678", "hk_macau_pass.format"),
        ("taiwan_pass", "1234567", "taiwan_pass.format"),
        ("taiwan_pass", "1234567A", "taiwan_pass.format"),
        ("passport", "AB12", "passport.length"),
        ("passport", "A" * 18, "passport.length"),
        ("passport", "E1234567/8", "passport.format"),
        ("passport", "", "passport.format"),
    ],
)
def test_travel_documents_refused(kind: str, value: str, code: str) -> None:
    assert code_of(kind, value) == code


# --------------------------------------------------------------------------- USCC


@pytest.mark.parametrize("value", ["91350100M000100Y43", "91350000611007201R"])
def test_uscc_known_good(value: str) -> None:
    result = validate("uscc", value.lower())
    assert (result.value, result.review) == (value, False)


def test_uscc_details() -> None:
    assert validate("uscc", "91350100M000100Y43").details == {
        "authority": "9",
        "entity_type": "1",
        "region": "350100",
    }


def test_uscc_bad_check_char_goes_to_review() -> None:
    # Given the spec's known bad code (its check char S is not even in the alphabet)
    result = validate("uscc", "91350000611007201S")
    # Then it is not refused but flagged for manual review
    assert (result.review, result.review_code) == (True, "uscc.check_char")
    # And an in-alphabet wrong check char likewise
    assert validate("uscc", "91350000611007201Q").review_code == "uscc.check_char"


def test_uscc_letter_authority_code_is_accepted() -> None:
    # GB 32100 authority codes include letters (N = 农业, Y = 其他); stdnum.cn.uscc.validate refuses them
    for body in ("N2350000611007201", "Y1350000611007201"):
        assert not validate("uscc", body + uscc_check(body)).review


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("91350000611007201", "uscc.length"),
        ("91350000611007201RR", "uscc.length"),
        ("9135000061100720IR", "uscc.charset"),
        ("9135000061100O201R", "uscc.charset"),
        ("913500006110072Z1R", "uscc.charset"),
        ("91350000611007201*", "uscc.charset"),
    ],
)
def test_uscc_refusals(value: str, code: str) -> None:
    assert code_of("uscc", value) == code


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_property_computed_check_char_is_not_reviewed(body: str) -> None:
    assert not validate("uscc", body + uscc_check(body)).review
    wrong = next(c for c in USCC_ALPHABET if c != uscc_check(body))
    assert validate("uscc", body + wrong).review_code == "uscc.check_char"


# --------------------------------------------------------------------------- VIN


@pytest.mark.parametrize("value", ["JHMCM56557C404453", "1M8GDM9AXKP042788"])
def test_vin_known_good(value: str) -> None:
    result = validate("vin", f" {value.lower()} ")
    assert result.value == value
    assert result.details["wmi"] == value[:3]


def test_vin_details_from_vininfo() -> None:
    assert validate("vin", "JHMCM56557C404453").details == {
        "wmi": "JHM",
        "manufacturer": "Honda",
        "country": "Japan",
        "model_year": "2007",
    }


def test_vin_with_model_year_zero_is_still_checked() -> None:
    # vininfo's verify_checksum() answers False for a 0/U/Z year letter; our check does not skip it
    value = with_vin_check("LFV2A21K0" + "0" + "3000001")
    assert validate("vin", value).value == value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("KNEJC524585810962", "vin.check_digit"),
        ("JHMCM56557C40445", "vin.length"),
        ("JHMCM56557C4044533", "vin.length"),
        ("JHMCM56557C4O4453", "vin.charset"),
        ("JHMCM56557C4I4453", "vin.charset"),
        ("JHMCQ56557C404453", "vin.charset"),
        ("JHMCM56557C40445*", "vin.charset"),
    ],
)
def test_vin_refusals(value: str, code: str) -> None:
    assert code_of("vin", value) == code


def test_vin_charset_message_names_i_o_q() -> None:
    with pytest.raises(InvalidField) as caught:
        validate("vin", "JHMCM56557C4O4453")
    assert "I、O、Q" in caught.value.message_zh
    assert "I, O or Q" in caught.value.message_en


@given(st.text(alphabet=VIN_ALPHABET, min_size=17, max_size=17), st.sampled_from("0123456789X"))
def test_vin_property_check_digit(raw: str, other: str) -> None:
    # Given a random VIN with the check digit computed by the test
    good = with_vin_check(raw)
    # Then it validates
    assert validate("vin", good).value == good
    # And any other check digit is refused
    if other != good[8]:
        assert code_of("vin", good[:8] + other + good[9:]) == "vin.check_digit"


# --------------------------------------------------------------------------- ICCID


@pytest.mark.parametrize(
    ("issuer", "operator"),
    [
        ("00", Operator.CHINA_MOBILE),
        ("02", Operator.CHINA_MOBILE),
        ("04", Operator.CHINA_MOBILE),
        ("07", Operator.CHINA_MOBILE),
        ("08", Operator.CHINA_MOBILE),
        ("01", Operator.CHINA_UNICOM),
        ("06", Operator.CHINA_UNICOM),
        ("09", Operator.CHINA_UNICOM),
        ("03", Operator.CHINA_TELECOM),
        ("11", Operator.CHINA_TELECOM),
        ("15", Operator.CHINA_BROADNET),
    ],
)
def test_iccid_operator_from_prefix(issuer: str, operator: Operator) -> None:
    # Given a 19-digit ICCID (no Luhn enforced), When validated, Then the operator comes from digits 5-6
    result = validate("iccid", f"8986{issuer}1234567890123")
    assert (result.operator, result.value) == (operator, f"8986{issuer}1234567890123")


def test_iccid_china_mobile_letters_are_accepted_and_upper_cased() -> None:
    result = validate("iccid", "898600d6 1a1b2c3d4e5f")
    assert (result.value, result.operator) == ("898600D61A1B2C3D4E5F", Operator.CHINA_MOBILE)


@pytest.mark.parametrize("issuer", ["01", "06", "09", "03", "11"])
def test_iccid_luhn_enforced_on_20_digit_numeric_unicom_and_telecom(issuer: str) -> None:
    good = luhn_complete(f"8986{issuer}1234567890123")
    assert validate("iccid", good).value == good
    bad = good[:-1] + str((int(good[-1]) + 1) % 10)
    assert code_of("iccid", bad) == "iccid.check_digit"


@pytest.mark.parametrize(
    "value",
    [
        "89860012345678901230",  # 20-digit China Mobile: no Luhn
        "89861512345678901230",  # 20-digit China Broadnet: no Luhn
        "8986011234567890123A",  # 20 chars Unicom but not all digits: no Luhn
        "8986011234567890123",  # 19 digits Unicom: no Luhn
        "898603123456789012",  # 18 digits Telecom: no Luhn
    ],
)
def test_iccid_luhn_not_enforced_elsewhere(value: str) -> None:
    # Given numbers whose Luhn digit is (deliberately) wrong where Luhn is not required
    if value.isdigit() and len(value) == 20:
        assert luhn_complete(value[:-1]) != value
    # Then they are accepted
    assert validate("iccid", value).value == value


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("8986001234567890123G", "iccid.format"),
        ("8986 0012-3456 7890 1", "iccid.length"),
        ("89860012345678901", "iccid.length"),
        ("898600123456789012345", "iccid.length"),
        ("8985001234567890123", "iccid.prefix"),
        ("8986051234567890123", "iccid.operator"),
        ("8986101234567890123", "iccid.operator"),
        ("", "iccid.format"),
    ],
)
def test_iccid_refusals(value: str, code: str) -> None:
    assert code_of("iccid", value) == code


# --------------------------------------------------------------------------- mobile and MSISDN


@pytest.mark.parametrize(
    "typed",
    ["13800138000", "+8613800138000", "0086 138 0013 8000", "+86-138-0013-8000", "１３８００１３８０００"],
)
def test_mobile_normalised(typed: str) -> None:
    result = validate("mobile", typed)
    assert (result.value, result.operator) == ("13800138000", None)


@pytest.mark.parametrize(
    "value",
    ["12800138000", "1380013800", "138001380000", "+8513800138000", "861380013800", "1380013800A", ""],
)
def test_mobile_refused(value: str) -> None:
    assert code_of("mobile", value) == "mobile.format"


@pytest.mark.parametrize(
    ("value", "operator"),
    [
        ("1440012345678", Operator.CHINA_MOBILE),
        ("1441912345678", Operator.CHINA_MOBILE),
        ("1480012345678", Operator.CHINA_MOBILE),
        ("1489912345678", Operator.CHINA_MOBILE),
        ("1460012345678", Operator.CHINA_UNICOM),
        ("1469912345678", Operator.CHINA_UNICOM),
        ("1410012345678", Operator.CHINA_TELECOM),
        ("1410912345678", Operator.CHINA_TELECOM),
        ("1064812345678", Operator.CHINA_MOBILE),
        ("1064612345678", Operator.CHINA_UNICOM),
        ("1064912345678", Operator.CHINA_TELECOM),
    ],
)
def test_msisdn_operator_from_segment(value: str, operator: Operator) -> None:
    result = validate("msisdn", value)
    assert (result.value, result.operator) == (value, operator)


def test_msisdn_normalised() -> None:
    assert validate("msisdn", "+86 1440-0123-45678").value == "1440012345678"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("13800138000", "msisdn.format"),  # a personal mobile, not an IoT number
        ("14400123456789", "msisdn.format"),
        ("144001234567A", "msisdn.format"),
        ("1442012345678", "msisdn.prefix"),
        ("1411012345678", "msisdn.prefix"),
        ("1470012345678", "msisdn.prefix"),
        ("1064712345678", "msisdn.prefix"),
        ("1380013800000", "msisdn.prefix"),
    ],
)
def test_msisdn_refusals(value: str, code: str) -> None:
    assert code_of("msisdn", value) == code


# --------------------------------------------------------------------------- dispatch, errors, docs


def test_unknown_kind() -> None:
    with pytest.raises(InvalidField) as caught:
        validate("driving_licence", "123")
    assert caught.value.code == "kind.unknown"


def test_field_defaults_to_kind_and_can_be_overridden() -> None:
    with pytest.raises(InvalidField) as caught:
        validate("vin", "x")
    assert caught.value.field == "vin"
    with pytest.raises(InvalidField) as caught:
        validate("vin", "x", field="vehicle.vin")
    assert caught.value.field == "vehicle.vin"
    assert caught.value.status == 422


def test_error_never_echoes_the_value() -> None:
    # ID numbers are PII: the refusal must not carry them
    with pytest.raises(InvalidField) as caught:
        validate("resident_id", "110105194912310021")
    assert "110105194912310021" not in str(caught.value.to_dict())


def test_non_text_value_is_refused_not_crashing() -> None:
    assert code_of("vin", None) == "vin.charset"  # type: ignore[arg-type]
    assert code_of("mobile", 13800138000) == "mobile.format"  # type: ignore[arg-type]


def test_validated_is_frozen() -> None:
    result = validate("mobile", "13800138000")
    with pytest.raises(ValidationError):
        result.value = "x"


def test_kinds_cover_every_id_type() -> None:
    assert {t.value for t in IdType} <= set(KINDS)
    assert set(KINDS) == {
        "resident_id",
        "hk_macau_permit",
        "taiwan_permit",
        "foreign_permanent_id",
        "hk_macau_pass",
        "taiwan_pass",
        "passport",
        "uscc",
        "vin",
        "iccid",
        "mobile",
        "msisdn",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_per_kind_function_is_what_validate_dispatches_to(kind: str) -> None:
    assert callable(getattr(v, kind))


ID_KINDS = ("resident_id", "hk_macau_permit", "taiwan_permit", "foreign_permanent_id")


@pytest.mark.parametrize("code", [*v.ERROR_CODES, *v.REVIEW_CODES])
def test_every_code_is_documented_in_the_module_docstring(code: str) -> None:
    kind, _, suffix = code.partition(".")
    doc = v.__doc__ or ""
    assert f"``{code}``" in doc or (kind in ID_KINDS and f"``<id>.{suffix}``" in doc)


@pytest.mark.parametrize("code", v.ERROR_CODES)
def test_every_message_is_bilingual(code: str) -> None:
    zh, en = v._MESSAGES[code]
    assert zh
    assert en
    assert zh != en


# --------------------------------------------------------------------------- properties

PROVINCES_BY_KIND = {
    "resident_id": [
        *[str(p) for p in (*range(11, 16), *range(21, 24), *range(31, 38), *range(41, 47))],
        *[str(p) for p in (*range(50, 55), *range(61, 66))],
        "71",
    ],
    "hk_macau_permit": ["81", "82"],
    "taiwan_permit": ["83"],
}


@st.composite
def gb11643_numbers(draw: st.DrawFn) -> tuple[str, str, date]:
    kind = draw(st.sampled_from(sorted(PROVINCES_BY_KIND)))
    province = draw(st.sampled_from(PROVINCES_BY_KIND[kind]))
    county = draw(st.text(alphabet="0123456789", min_size=4, max_size=4))
    born = draw(st.dates(min_value=date(1900, 1, 1), max_value=TODAY))
    seq = draw(st.text(alphabet="0123456789", min_size=3, max_size=3))
    return kind, resident(f"{province}{county}{born:%Y%m%d}{seq}"), born


@given(gb11643_numbers(), st.sampled_from("0123456789X"))
@settings(max_examples=300)
def test_gb11643_property(number: tuple[str, str, date], other: str) -> None:
    kind, value, born = number
    # When a well-formed number with a computed check char is validated, Then it is valid (maybe reviewed)
    result = validate(kind, value, today=TODAY)
    assert result.value == value
    assert result.details["birth_date"] == born.isoformat()
    assert result.details["sex"] == ("M" if int(value[16]) % 2 else "F")
    assert result.review_code in (None, f"{kind}.unknown_county")
    # And with any other check char it is refused
    if other != value[17]:
        assert code_of(kind, value[:17] + other, today=TODAY) == f"{kind}.check_char"


@given(
    st.sampled_from(KINDS),
    st.one_of(
        st.text(),
        st.text(alphabet="0123456789Xx +-", max_size=24),
        st.text(alphabet="0123456789ABCDEFHJMNRUWXY-+ ", max_size=24),
        st.from_regex(r"(\+86|0086)?1[0-9]{10,12}", fullmatch=True),
        st.from_regex(r"8986[0-9A-Fa-f]{12,17}", fullmatch=True),
    ),
)
@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
def test_validate_only_ever_raises_invalid_field(kind: str, text: str) -> None:
    # Given any text for any kind, When validated, Then the only exception is InvalidField with a known code
    result: Validated | InvalidField
    try:
        result = validate(kind, text, today=TODAY)
    except InvalidField as error:
        result = error
    if isinstance(result, InvalidField):
        assert result.code in v.ERROR_CODES
        assert result.code.startswith(f"{kind}.")
    else:
        assert result.kind == kind
        assert result.review_code is None or result.review_code in v.REVIEW_CODES
