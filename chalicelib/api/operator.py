"""The operator's callback endpoint: signed, fresh, never replayed, applied once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.api.http import JSON, Blueprint, Call, route
from chalicelib.core import deps, lazy
from chalicelib.core.metric_names import Metric
from chalicelib.core.observability import emit
from chalicelib.kernel.errors import DomainError

if TYPE_CHECKING:
    from chalicelib.operators import views
    from chalicelib.operators.views import CallbackAck
else:
    # Its model is built when first used (it is not deferred): not at a cold start.
    views = lazy.module("chalicelib.operators.views")

bp = Blueprint(__name__)


@route(
    bp,
    "/v1/operator/callbacks",
    method="POST",
    summary="The operator's answer to a push (signature, timestamp window and nonce checked; idempotent)",
    roles=None,
    response=lambda: views.CallbackAck,
    content_types=(JSON,),
    raw_body=True,
    errors=(401, 409),
    tags=("operator",),
)
def operator_callback(call: Call) -> CallbackAck:
    try:
        return deps.operator_callbacks().receive(dict(call.request.headers), call.body)
    except DomainError as err:
        emit(Metric.CALLBACK_RECEIVED, outcome="refused", reason=err.code)
        raise
