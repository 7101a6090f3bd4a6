"""The operator's callback endpoint: signed, fresh, never replayed, applied once."""

from __future__ import annotations

from datetime import UTC, datetime

from chalice.app import Blueprint
from pydantic import BaseModel

from chalicelib.api.http import JSON, Call, route
from chalicelib.core import deps
from chalicelib.core.observability import logger
from chalicelib.core.settings import get_settings
from chalicelib.operators.callbacks import verify_callback

bp = Blueprint(__name__)


class CallbackAck(BaseModel):
    received: bool
    callback_id: str
    note: str
    state: str | None


@route(
    bp,
    "/v1/operator/callbacks",
    method="POST",
    summary="The operator's answer to a push (signature, timestamp window and nonce checked; idempotent)",
    roles=None,
    response=CallbackAck,
    content_types=(JSON,),
    raw_body=True,
    errors=(401, 409),
    tags=("operator",),
)
def operator_callback(call: Call) -> CallbackAck:
    settings = get_settings()
    window = settings.operator_signature_window_seconds
    callback = verify_callback(
        dict(call.request.headers),
        call.body,
        deps.operator_keys(),
        datetime.now(UTC),
        deps.operator_nonces().seen,
        path=settings.operator_callback_path,
        window_seconds=window,
    )
    result = deps.lifecycle().apply_callback(callback)
    if result.note.value == "applied":
        # The person hears of the outcome (确认登记结果 by SMS); the callback is answered either way.
        try:
            deps.registration_service().on_push_result(result.message_id)
        except Exception:
            logger.exception("result notification failed", extra={"callback": result.callback_id})
    return CallbackAck(
        received=True,
        callback_id=result.callback_id,
        note=result.note.value,
        state=result.state.value if result.state else None,
    )
