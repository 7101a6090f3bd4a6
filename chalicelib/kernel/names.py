"""Names and addresses as real text (姓名、企业名称、住址): normalised once, refused when they are not.

Pure domain code. ``clean_text(kind, value, field=)`` returns the normalised text or raises
:class:`~chalicelib.kernel.errors.InvalidField` with a stable code ``<kind>.<problem>``, a Chinese and an
English message and the field; messages never echo the value (it is personal data).

Normalisation: Unicode NFKC (full-width letters and digits become ASCII, the ideographic space a space);
spaces trimmed and inner runs collapsed to one. A person's name also loses the spaces beside Chinese
characters (``张 三`` → ``张三``) and writes the dot of minority and foreign names in Chinese as the middle
dot ``·`` (``•``, ``・``, ``.`` between Chinese characters).

Refused (``<kind>`` is ``name``, ``company_name`` or ``address``):

=======================  ==============================================================================
code                     meaning
=======================  ==============================================================================
``<kind>.empty``         nothing left once trimmed (only spaces)
``<kind>.too_long``      longer than the kind's bound (name 64, company name 128, address 128)
``<kind>.control``       a control character (other than a tab or line break, which count as spaces)
``<kind>.invisible``     a zero-width or other invisible format character (U+200B–U+200D, U+2060,
                         U+FEFF, U+00AD, ...), a private-use or unassigned code point
``<kind>.bidi``          a bidirectional override, embedding, isolate or mark (U+202A–U+202E,
                         U+2066–U+2069, U+200E, U+200F, U+061C)
``<kind>.markup``        a markup character: ``<`` ``>`` ``&`` ``"`` `````` ``\\``
``name.charset``         a person's name with something other than letters, spaces and ``· - ' . ,``
                         or with no letter at all
=======================  ==============================================================================
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from chalicelib.kernel.errors import InvalidField


class TextKind(StrEnum):
    NAME = "name"  # 姓名 of a person
    COMPANY_NAME = "company_name"  # 企业名称 (单位名称)
    ADDRESS = "address"  # 住址 / 住所


#: The longest text of each kind, counted after normalisation.
MAX_LENGTH: dict[TextKind, int] = {TextKind.NAME: 64, TextKind.COMPANY_NAME: 128, TextKind.ADDRESS: 128}

_WHAT: dict[TextKind, tuple[str, str]] = {
    TextKind.NAME: ("姓名", "The name"),
    TextKind.COMPANY_NAME: ("单位名称", "The company name"),
    TextKind.ADDRESS: ("地址", "The address"),
}

_PROBLEMS: dict[str, tuple[str, str]] = {
    "empty": ("不能为空", "must not be empty"),
    "too_long": ("过长（最多 {n} 个字）", "is too long (at most {n} characters)"),
    "control": ("包含控制字符", "contains a control character"),
    "invisible": (
        "包含不可见字符（如零宽字符）",
        "contains an invisible character (such as a zero-width one)",
    ),
    "bidi": ("包含文字方向控制字符", "contains a text direction (bidi) control character"),
    "markup": ("包含不允许的符号（如 < > &）", "contains a character that is not allowed (such as < > &)"),
    "charset": (
        "只能包含文字、空格和间隔号（·）",
        "may contain only letters, spaces and the middle dot (·)",
    ),
}

_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_MARKUP = frozenset('<>&"`\\')

#: Read as a space: the usual breaks a pasted value carries.
_SPACES = frozenset(" \t\n\r")

_MIDDLE_DOTS = str.maketrans(dict.fromkeys("•‧∙⋅・･", "·"))

#: Besides letters (and the marks that combine with them), what a person's name may hold.
_NAME_PUNCTUATION = frozenset(" ·-'.,")

_RUNS_OF_SPACES = re.compile(r" {2,}")


def _cjk(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\U00020000" <= ch <= "\U0003134f" or "\uf900" <= ch <= "\ufaff"


def text_error(kind: TextKind, problem: str, field: str) -> InvalidField:
    what_zh, what_en = _WHAT[kind]
    zh, en = _PROBLEMS[problem]
    n = MAX_LENGTH[kind]
    return InvalidField(
        f"{kind.value}.{problem}", what_zh + zh.format(n=n), f"{what_en} {en.format(n=n)}", field=field
    )


def _refuse_invisible(kind: TextKind, value: str, field: str) -> None:
    for ch in value:
        if ch in _SPACES:
            continue
        if ch in _BIDI:
            raise text_error(kind, "bidi", field)
        category = unicodedata.category(ch)
        if category in ("Cc", "Zl", "Zp"):
            raise text_error(kind, "control", field)
        if category in ("Cf", "Co", "Cs", "Cn"):
            raise text_error(kind, "invisible", field)
        if ch in _MARKUP:
            raise text_error(kind, "markup", field)


def _spaces_collapsed(value: str) -> str:
    value = "".join(" " if ch in _SPACES or unicodedata.category(ch) == "Zs" else ch for ch in value)
    return _RUNS_OF_SPACES.sub(" ", value).strip()


def _person_name(value: str, field: str) -> str:
    value = value.translate(_MIDDLE_DOTS)
    chinese = any(_cjk(ch) for ch in value)
    if chinese:
        value = value.replace(".", "·")
    kept: list[str] = []
    for i, ch in enumerate(value):
        if ch == " ":
            before = value[i - 1] if i else ""
            after = value[i + 1] if i + 1 < len(value) else ""
            if _cjk(before) or _cjk(after) or "·" in (before, after):
                continue
        kept.append(ch)
    value = "".join(kept)
    if not any(unicodedata.category(ch).startswith("L") for ch in value) or (
        value[0] == "·" or value[-1] == "·" or "··" in value
    ):
        raise text_error(TextKind.NAME, "charset", field)
    for ch in value:
        if ch not in _NAME_PUNCTUATION and unicodedata.category(ch)[0] not in "LM":
            raise text_error(TextKind.NAME, "charset", field)
    return value


def clean_text(kind: TextKind, value: str, *, field: str) -> str:
    """``value`` normalised as text of ``kind``, or an :class:`InvalidField` on ``field``."""
    _refuse_invisible(kind, value, field)
    value = unicodedata.normalize("NFKC", value)
    _refuse_invisible(kind, value, field)  # NFKC can compose what was allowed into what is not
    value = _spaces_collapsed(value)
    if not value:
        raise text_error(kind, "empty", field)
    if kind is TextKind.NAME:
        value = _person_name(value, field)
    if len(value) > MAX_LENGTH[kind]:
        raise text_error(kind, "too_long", field)
    return value


def clean_optional(kind: TextKind, value: str | None, *, field: str) -> str | None:
    """An optional text: ``None`` when not given or only spaces, else as :func:`clean_text`."""
    if value is None or not _spaces_collapsed(value):
        return None
    return clean_text(kind, value, field=field)


def under(error: InvalidField, prefix: str) -> InvalidField:
    """``error`` with its field moved under ``prefix`` (``name`` → ``owner.name``)."""
    field = f"{prefix}.{error.field}" if error.field else prefix
    return InvalidField(error.code, error.message_zh, error.message_en, field=field, details=error.details)
