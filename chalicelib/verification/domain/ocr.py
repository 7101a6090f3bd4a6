"""Reading documents from OCR text lines (证件识别), and checking them against what the user typed.

Pure domain code: no I/O, no engine. The parsers take :class:`~chalicelib.adapters.ocr.port.TextLine`
objects in any order and

1. group them into rows by their boxes (lines whose vertical centre falls within a row's span), left to
   right within a row; lines without a box keep the order given;
2. join the rows into one stream with whitespace removed (NFKC-folded, so full-width digits, colons and
   brackets become ASCII): an engine that splits ``姓 名`` into two boxes, or a label from its value,
   or merges ``姓名张三`` / ``性别男民族汉`` into one, gives the same stream;
3. find each field's label in the document's order (a label not found in order is searched anywhere),
   and take as its value the text up to the next label found.

Each field's confidence is the lowest confidence of the lines its value came from.

``cross_check`` compares a reading with what the user typed (姓名, 公民身份号码, 统一社会信用代码,
企业名称) and explains each difference by field; its messages never contain the values themselves
(both are personal data), only which field differs and, for numbers, at which positions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from chalicelib.kernel.errors import InvalidField
from chalicelib.kernel.validators import validate
from chalicelib.verification.domain.readings import (
    AuthorizationLetter,
    BusinessLicence,
    IdBack,
    IdFront,
    TextLine,
    VehicleDocument,
)


class _Stream:
    """The document's text as one string, with the index of the source line of every character."""

    def __init__(self, lines: Sequence[TextLine]) -> None:
        self.lines = list(lines)
        parts: list[str] = []
        owners: list[int] = []
        for index in _reading_order(self.lines):
            text = _fold(self.lines[index].text)
            parts.append(text)
            owners.extend([index] * len(text))
        self.text = "".join(parts)
        self.owners = owners

    def confidence(self, start: int, end: int) -> float:
        if start >= end:
            return 0.0
        return min(self.lines[i].confidence for i in set(self.owners[start:end]))


def _fold(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def _reading_order(lines: Sequence[TextLine]) -> list[int]:
    if not lines or any(line.box is None for line in lines):
        return list(range(len(lines)))
    rows: list[tuple[float, float, list[int]]] = []  # top, bottom, members
    for index in sorted(range(len(lines)), key=lambda i: lines[i].top):
        line = lines[index]
        centre = (line.top + line.bottom) / 2
        for row_index, (top, bottom, members) in enumerate(rows):
            if top <= centre <= bottom:
                members.append(index)
                rows[row_index] = (min(top, line.top), max(bottom, line.bottom), members)
                break
        else:
            rows.append((line.top, line.bottom, [index]))
    order: list[int] = []
    for _top, _bottom, members in rows:
        order.extend(sorted(members, key=lambda i: lines[i].left))
    return order


# Leading/trailing noise around a value: colons, punctuation an engine reads from print artefacts.
_EDGE_NOISE = ":;,.、，。：；|_-—'\"`"


def _find_values(
    stream: _Stream, labels: Sequence[tuple[str, str]], stops: str = ""
) -> dict[str, tuple[int, int]]:
    """field → (start, end) of its value in ``stream.text``, for each label found."""
    text = stream.text
    chosen: dict[str, re.Match[str]] = {}
    position = 0
    for field, pattern in labels:
        compiled = re.compile(pattern)
        match = compiled.search(text, position) or compiled.search(text)
        if match is None:
            continue
        chosen[field] = match
        position = max(position, match.end())
    starts = {m.start() for m in chosen.values()}
    if stops:
        starts |= {m.start() for m in re.finditer(stops, text)}
    spans: dict[str, tuple[int, int]] = {}
    for field, match in chosen.items():
        end = min((s for s in starts if s >= match.end()), default=len(text))
        start = match.end()
        while start < end and text[start] in _EDGE_NOISE:
            start += 1
        while end > start and text[end - 1] in _EDGE_NOISE:
            end -= 1
        spans[field] = (start, end)
    return spans


class _Reading:
    """Values and confidences collected for one document."""

    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.values: dict[str, object] = {}
        self.confidences: dict[str, float] = {}

    def put(self, field: str, value: object, start: int, end: int) -> None:
        if value is None or value == "":
            return
        self.values[field] = value
        self.confidences[field] = round(self.stream.confidence(start, end), 4)

    def text(self, field: str, span: tuple[int, int] | None) -> None:
        if span is not None:
            self.put(field, self.stream.text[span[0] : span[1]], *span)

    def search(self, pattern: re.Pattern[str], span: tuple[int, int] | None) -> re.Match[str] | None:
        """First match of ``pattern`` inside the span (or, without a span, anywhere)."""
        start, end = span or (0, len(self.stream.text))
        return pattern.search(self.stream.text, start, end)


_DATE = r"(\d{4})[.\-/年]?(\d{1,2})[.\-/月]?(\d{1,2})日?"


_DATE_RE = re.compile(_DATE)


_VALIDITY_RE = re.compile(_DATE + r"[-—–~一至]*(?:" + _DATE + r"|(长期))?")


_ID_NUMBER_RE = re.compile(r"[0-9]{17}[0-9X]")


_USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{18}")


# Letters an engine reads for digits in a field that holds only digits (and X).
_DIGIT_LOOKALIKES = str.maketrans({"O": "0", "D": "0", "I": "1", "L": "1", "×": "X", "*": "X"})


def _date(year: str, month: str, day: str) -> date | None:
    try:
        value = date(int(year), int(month), int(day))
    except ValueError:
        return None
    return value if 1900 <= value.year <= 2199 else None


def _number(stream: _Stream, span: tuple[int, int] | None, pattern: re.Pattern[str]) -> tuple[str, int, int]:
    """The first value matching ``pattern`` in the span (look-alike letters fixed), else anywhere."""
    if span is not None:
        raw = stream.text[span[0] : span[1]].upper().translate(_DIGIT_LOOKALIKES)
        match = pattern.search(raw)
        if match is not None:
            return match.group(), span[0] + match.start(), span[0] + match.end()
    match = pattern.search(stream.text.upper())
    if match is not None:
        return match.group(), match.start(), match.end()
    return "", 0, 0


_FRONT_LABELS = (
    ("name", r"姓名"),
    ("sex", r"性别"),
    ("ethnicity", r"民族"),
    ("birth_date", r"出生"),
    ("address", r"住址"),
    ("id_number", r"公民身份号码|公民身份号|身份号码"),
)


def parse_id_front(lines: Sequence[TextLine]) -> IdFront:
    """居民身份证人像面: 姓名、性别、民族、出生、住址、公民身份号码."""
    stream = _Stream(lines)
    spans = _find_values(stream, _FRONT_LABELS)
    reading = _Reading(stream)
    reading.text("name", spans.get("name"))
    if "sex" in spans and (match := reading.search(re.compile("[男女]"), spans["sex"])):
        reading.put("sex", match.group(), match.start(), match.end())
    if "ethnicity" in spans and (match := reading.search(re.compile(r"[一-鿿]+"), spans["ethnicity"])):
        reading.put("ethnicity", match.group(), match.start(), match.end())
    if "birth_date" in spans and (match := reading.search(_DATE_RE, spans["birth_date"])):
        reading.put("birth_date", _date(*match.groups()), match.start(), match.end())
    reading.text("address", spans.get("address"))
    number, start, end = _number(stream, spans.get("id_number"), _ID_NUMBER_RE)
    reading.put("id_number", number, start, end)
    return IdFront.model_validate({**reading.values, "confidences": reading.confidences})


_BACK_LABELS = (("authority", r"签发机关|签发机美"), ("validity", r"有效期限|有效期"))


_BACK_STOPS = r"中华人民共和国|居民身份证"


def parse_id_back(lines: Sequence[TextLine]) -> IdBack:
    """居民身份证国徽面: 签发机关、有效期限 (an end date, or 长期)."""
    stream = _Stream(lines)
    spans = _find_values(stream, _BACK_LABELS, _BACK_STOPS)
    reading = _Reading(stream)
    reading.text("authority", spans.get("authority"))
    match = reading.search(_VALIDITY_RE, spans.get("validity"))
    if match is not None:
        groups = match.groups()
        reading.put("valid_from", _date(*groups[0:3]), match.start(1), match.end(3))
        if groups[3] is not None:
            reading.put("valid_until", _date(*groups[3:6]), match.start(4), match.end(6))
        elif groups[6] is not None:
            reading.put("permanent", True, match.start(7), match.end(7))
    return IdBack.model_validate({**reading.values, "confidences": reading.confidences})


_LICENCE_LABELS = (
    ("uscc", r"统一社会信用代码"),
    ("name", r"企业名称|名称"),
    ("type", r"类型|组织形式"),
    ("legal_representative", r"法定代表人|执行事务合伙人|负责人|经营者"),
    ("address", r"主要经营场所|经营场所|营业场所|住所"),
)


_LICENCE_STOPS = (
    r"注册资本|出资额|成立日期|注册日期|营业期限|合伙期限|经营范围|登记机关|营业执照|\(副本\)|\(正本\)"
)


def parse_business_licence(lines: Sequence[TextLine]) -> BusinessLicence:
    """营业执照: 统一社会信用代码、名称、类型、法定代表人、住所."""
    stream = _Stream(lines)
    spans = _find_values(stream, _LICENCE_LABELS, _LICENCE_STOPS)
    reading = _Reading(stream)
    number, start, end = _number(stream, spans.get("uscc"), _USCC_RE)
    reading.put("uscc", number, start, end)
    for field in ("name", "type", "legal_representative", "address"):
        reading.text(field, spans.get(field))
    return BusinessLicence.model_validate({**reading.values, "confidences": reading.confidences})


#: A VIN never holds I, O or Q (GB 16735): an engine reading one meant 1 or 0.
_VIN_LOOKALIKES = str.maketrans({"O": "0", "Q": "0", "I": "1"})


_VIN_WINDOW = re.compile(r"(?=([A-HJ-NPR-Z0-9]{17}))")


_VIN_LABEL = re.compile(r"车辆识别代号|车辆识别代码|车架号码|车架号|VIN")


_PLATE_RE = re.compile(r"号牌号码([\u4e00-\u9fff][A-Z][A-Z0-9]{5,6})")


def _vin_in(text: str, start: int) -> tuple[str, int] | None:
    """The first 17-character run from ``start`` whose check digit holds (GB 16735), and where."""
    for match in _VIN_WINDOW.finditer(text, start):
        candidate = match.group(1)
        try:
            return validate("vin", candidate, field="vin").value, match.start()
        except InvalidField:
            continue
    return None


def parse_vehicle_document(lines: Sequence[TextLine]) -> VehicleDocument:
    """行驶证 / 机动车销售统一发票: the VIN (after its label 车辆识别代号 / 车架号码 when there is one, else
    any 17 characters whose check digit holds) and a 行驶证's plate (号牌号码)."""
    stream = _Stream(lines)
    reading = _Reading(stream)
    text = stream.text.upper().translate(_VIN_LOOKALIKES)
    labels = [m.end() for m in _VIN_LABEL.finditer(stream.text.upper())]
    found = None
    for start in [*labels, 0]:
        found = _vin_in(text, start)
        if found is not None:
            break
    if found is not None:
        vin, at = found
        reading.put("vin", vin, at, at + 17)
    plate = _PLATE_RE.search(stream.text.upper())
    if plate is not None:
        reading.put("plate", plate.group(1), plate.start(1), plate.end(1))
    return VehicleDocument.model_validate({**reading.values, "confidences": reading.confidences})


# A label is followed by its colon: the letter's sentence (本人委托受托人代为办理) names the roles too.
_LETTER_LABELS = (
    ("owner_name", r"委托人(?:姓名)?:"),
    ("owner_id_number", r"(?:公民)?身份(?:证)?号码:|证件号码:"),
    ("trustee_name", r"受托人(?:姓名)?:"),
    ("trustee_id_number", r"(?:公民)?身份(?:证)?号码:|证件号码:"),
    ("vin", r"车辆识别代号(?:\(VIN\))?:|车架号码?:|VIN:"),
    ("signed_on", r"日期:"),
)


_LETTER_STOPS = r"本人|兹委托|委托事项|委托权限|委托期限|委托人\(签|受托人\(签|授权委托书"


def parse_authorization_letter(lines: Sequence[TextLine]) -> AuthorizationLetter:
    """授权委托书: 委托人 and 受托人 (each with an ID number), 车辆识别代号 and the date."""
    stream = _Stream(lines)
    spans = _find_values(stream, _LETTER_LABELS, _LETTER_STOPS)
    reading = _Reading(stream)
    for role in ("owner", "trustee"):
        reading.text(f"{role}_name", spans.get(f"{role}_name"))
        if f"{role}_id_number" in spans:
            match = reading.search(_ID_NUMBER_RE, spans[f"{role}_id_number"])
            if match is not None:
                reading.put(f"{role}_id_number", match.group(), match.start(), match.end())
    if "vin" in spans:
        start, end = spans["vin"]
        text = stream.text[:end].upper().translate(_VIN_LOOKALIKES)
        found = _vin_in(text, start)
        if found is not None:
            reading.put("vin", found[0], found[1], found[1] + 17)
    if "signed_on" in spans and (match := reading.search(_DATE_RE, spans["signed_on"])):
        reading.put("signed_on", _date(*match.groups()), match.start(), match.end())
    return AuthorizationLetter.model_validate({**reading.values, "confidences": reading.confidences})


#: part of the letter → (Chinese name, English name) used in its messages.
_LETTER_PARTS: dict[str, tuple[str, str]] = {
    "owner_name": ("委托人（车主）姓名", "owner's name"),
    "owner_id_number": ("委托人身份证号码", "owner's ID number"),
    "trustee_name": ("受托人姓名", "trustee's name"),
    "vin": ("车辆识别代号（VIN）", "VIN"),
}


def _letter_mismatch(part: str, unreadable: bool) -> FieldMismatch:
    zh, en = _LETTER_PARTS[part]
    if unreadable:
        return FieldMismatch(
            field=f"authorization_letter.{part}",
            code=UNREADABLE,
            message_zh=f"未能从授权委托书中识别出{zh}，请上传写明{zh}的清晰照片",
            message_en=f"The {en} could not be read from the authorization letter; upload a clear photo "
            f"of a letter that states it",
        )
    return FieldMismatch(
        field=f"authorization_letter.{part}",
        code=MISMATCH,
        message_zh=f"授权委托书上的{zh}与本次办理的不一致",
        message_en=f"The {en} on the authorization letter is not the one of this registration",
    )


def _same_number(read: str, typed: str) -> bool:
    return _normalised_number("resident_id", read) == _normalised_number("resident_id", typed)


def check_letter(
    letter: AuthorizationLetter,
    *,
    owner_name: str,
    vin: str,
    owner_id_number: str | None = None,
    trustee_name: str | None = None,
) -> list[FieldMismatch]:
    """What the letter does not confirm: it must name the owner, a trustee (``trustee_name`` when
    known) and the car's VIN; the owner's ID number, where the letter carries one, must agree."""
    problems: list[FieldMismatch] = []
    if not letter.owner_name:
        problems.append(_letter_mismatch("owner_name", unreadable=True))
    elif _plain(letter.owner_name) != _plain(owner_name):
        problems.append(_letter_mismatch("owner_name", unreadable=False))
    read_number = letter.owner_id_number
    if owner_id_number and read_number and not _same_number(read_number, owner_id_number):
        problems.append(_letter_mismatch("owner_id_number", unreadable=False))
    if not letter.trustee_name:
        problems.append(_letter_mismatch("trustee_name", unreadable=True))
    elif trustee_name is not None and _plain(letter.trustee_name) != _plain(trustee_name):
        problems.append(_letter_mismatch("trustee_name", unreadable=False))
    if not letter.vin:
        problems.append(_letter_mismatch("vin", unreadable=True))
    elif _normalised_number("vin", letter.vin) != _normalised_number("vin", vin):
        problems.append(_letter_mismatch("vin", unreadable=False))
    return problems


MISMATCH = "ocr.mismatch"


UNREADABLE = "ocr.unreadable"


#: field → (Chinese name, English name) used in the messages.
_FIELD_NAMES: dict[str, tuple[str, str]] = {
    "name": ("姓名", "name"),
    "id_number": ("公民身份号码", "ID number"),
    "uscc": ("统一社会信用代码", "unified social credit code"),
    "company_name": ("企业名称", "company name"),
}


class TypedDetails(BaseModel):
    """What the user typed in the form (各字段可缺省: only given fields are compared)."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    id_number: str | None = None
    uscc: str | None = None
    company_name: str | None = None


class FieldMismatch(BaseModel):
    """One field whose photo reading differs from (or could not confirm) what was typed."""

    model_config = ConfigDict(frozen=True)

    field: str
    code: str
    message_zh: str
    message_en: str
    #: For numbers of equal length, the 1-based positions that differ (never the characters).
    details: dict[str, list[int] | int] = Field(default_factory=dict)

    def to_error(self) -> InvalidField:
        return InvalidField(
            self.code, self.message_zh, self.message_en, field=self.field, details=dict(self.details)
        )


_MIDDLE_DOTS = str.maketrans(dict.fromkeys("•・‧∙⋅●.．", "·"))


def _plain(value: str) -> str:
    return _fold(value).translate(_MIDDLE_DOTS)


def _normalised_number(kind: str, value: str) -> str:
    try:
        return validate(kind, value).value
    except InvalidField:
        return re.sub(r"[^0-9A-Z]", "", _fold(value).upper())


def _compare(field: str, read: str | None, typed: str | None, kind: str | None) -> FieldMismatch | None:
    if typed is None or not typed.strip():
        return None
    zh, en = _FIELD_NAMES[field]
    if not read:
        return FieldMismatch(
            field=field,
            code=UNREADABLE,
            message_zh=f"未能从证件照片中识别出{zh}，请重新拍摄清晰的照片",
            message_en=f"The {en} could not be read from the photo; please take a clearer photo",
        )
    if kind is None:
        same = _plain(read) == _plain(typed)
        details: dict[str, list[int] | int] = {}
        where_zh = where_en = ""
    else:
        a, b = _normalised_number(kind, read), _normalised_number(kind, typed)
        same = a == b
        details = {}
        if len(a) == len(b):
            positions = [i + 1 for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
            details = {"positions": positions}
            where_zh = "（第" + "、".join(map(str, positions)) + "位不同）"
            where_en = (
                " (position" + ("s " if len(positions) > 1 else " ") + ", ".join(map(str, positions)) + ")"
            )
        else:
            details = {"read_length": len(a), "typed_length": len(b)}
            where_zh, where_en = "（位数不同）", " (different length)"
    if same:
        return None
    return FieldMismatch(
        field=field,
        code=MISMATCH,
        message_zh=f"证件照片上的{zh}与填写的不一致{where_zh}，请对照证件核对",
        message_en=f"The {en} on the photo differs from the one typed{where_en}",
        details=details,
    )


def cross_check(ocr: IdFront | BusinessLicence, typed: TypedDetails) -> list[FieldMismatch]:
    """Each field the user typed that the photo does not confirm, field by field (empty: all agree).

    ID card front: 姓名 and 公民身份号码 (both normalised; a 15-digit number is compared as 18).
    Business licence: 统一社会信用代码 and 名称 (compared with ``typed.company_name``).
    """
    if isinstance(ocr, IdFront):
        checks = [
            _compare("name", ocr.name, typed.name, None),
            _compare("id_number", ocr.id_number, typed.id_number, "resident_id"),
        ]
    else:
        checks = [
            _compare("uscc", ocr.uscc, typed.uscc, "uscc"),
            _compare("company_name", ocr.name, typed.company_name, None),
        ]
    return [c for c in checks if c is not None]
