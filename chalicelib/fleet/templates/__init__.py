"""The printable templates an enterprise downloads, fills in, signs and stamps, then photographs for its
batch: the authorization letter (授权书) and the custody agreement (车卡分管协议). Plain HTML pages in
Chinese, printed from the browser."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from chalicelib.fleet.domain import MAX_BATCH_VEHICLES

TEMPLATES = ("authorization_letter", "custody_agreement")

_HERE = Path(__file__).parent


@cache
def template_html(name: str) -> str:
    """The page of template ``name`` (one of ``TEMPLATES``)."""
    if name not in TEMPLATES:
        raise KeyError(name)
    text = (_HERE / f"{name}.html").read_text(encoding="utf-8")
    return text.replace("{{max_vehicles}}", str(MAX_BATCH_VEHICLES))
