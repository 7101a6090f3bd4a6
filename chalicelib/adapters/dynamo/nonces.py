"""Replay protection for signed operator callbacks: a nonce is accepted once (conditional put)."""

from __future__ import annotations

from pynamodb.exceptions import PutError

from chalicelib.adapters.dynamo.models_operator import OperatorNonceModel
from chalicelib.kernel.clock import utc_now


class DynamoNonces:
    def __init__(self, keep_seconds: int) -> None:
        self._keep = keep_seconds

    def seen(self, nonce: str) -> bool:
        """True when ``nonce`` was already used (a replay); otherwise remember it and answer False."""
        try:
            OperatorNonceModel(nonce, expires_epoch=int(utc_now().timestamp()) + self._keep).save(
                condition=OperatorNonceModel.nonce.does_not_exist()
            )
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                return True
            raise  # the store failed: not a replay (the operator retries; its nonce is still fresh)
        return False
