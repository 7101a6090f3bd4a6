"""Field validation for clients (as the user types) and who-am-I."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import Blueprint, Call, route
from chalicelib.core import lazy
from chalicelib.core.auth import ALL_ROLES

if TYPE_CHECKING:
    from chalicelib.api import tools_views as models
    from chalicelib.kernel import personal, validators
else:
    models = lazy.module("chalicelib.api.tools_views")
    personal = lazy.module("chalicelib.kernel.personal")
    validators = lazy.module("chalicelib.kernel.validators")


def personal_kind(kind: str) -> bool:
    """Whether values of ``kind`` are personal data (a company's USCC is public)."""
    id_type = personal.IdType
    return kind == "mobile" or kind in {t.value for t in id_type if t is not id_type.USCC}


bp = Blueprint(__name__)


@route(
    bp,
    "/v1/validate/{kind}",
    method="POST",
    summary="Validate one value of a kind (resident_id, uscc, vin, iccid, mobile, msisdn, ...)",
    roles=ALL_ROLES,
    body=lambda: models.ValueToCheck,
    response=lambda: validators.Validated,
    tags=("tools",),
)
def validate_value(call: Call, kind: str) -> validators.Validated:
    # The value is in the body, not the path, so that no ID number lands in an access log.
    result = validators.validate(kind, call.body.value, field="value")
    if personal_kind(kind):
        # The verdict is what a client needs; the number (and the birth date it holds) is not echoed.
        mask = personal.mask_phone if kind == "mobile" else personal.mask_id_number
        return result.model_copy(update={"value": mask(result.value), "details": {}})
    return result


@route(
    bp,
    "/v1/me",
    summary="The caller's subject and roles",
    roles=ALL_ROLES,
    response=lambda: models.Me,
    tags=("auth",),
)
def me(call: Call) -> models.Me:
    return models.Me(subject=call.user.subject, roles=sorted(r.value for r in call.user.roles))
