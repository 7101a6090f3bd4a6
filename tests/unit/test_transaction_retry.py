"""A transaction DynamoDB cancelled for a conflict with another one in flight (``TransactionConflict``)
reaches the adapter that sent it, whose retry loop tries it again; it is not answered as an unavailable
store before the adapter could read its reasons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError


@pytest.fixture
def evidence_table() -> Iterator[None]:
    """The evidence table alone, on the embedded AWS."""
    from moto import mock_aws

    from chalicelib.adapters.dynamo.models import EvidenceModel
    from chalicelib.core import deps

    with mock_aws():
        deps.reset()
        deps._bind_tables()
        EvidenceModel.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        yield
        EvidenceModel._connection = None
    deps.reset()


def _conflict() -> ClientError:
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled"},
        "CancellationReasons": [
            {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
            {"Code": "None"},
        ],
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, "TransactWriteItems")


def test_an_evidence_append_cancelled_for_a_conflict_is_retried_by_the_log_and_lands(
    evidence_table: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.adapters.dynamo.evidence import DynamoEvidenceLog
    from chalicelib.adapters.dynamo.models import EvidenceModel
    from chalicelib.verification.domain.evidence import EvidenceKind
    from tests.fakes.crypto import FakeCipher

    log = DynamoEvidenceLog(FakeCipher())
    client = EvidenceModel._get_connection().connection.client
    real = client._make_api_call
    sent: list[str] = []

    def conflicting_once(operation: str, kwargs: dict[str, Any]) -> Any:
        if operation == "TransactWriteItems":
            sent.append(operation)
            if len(sent) == 1:
                raise _conflict()
        return real(operation, kwargs)

    monkeypatch.setattr(client, "_make_api_call", conflicting_once)
    kind = next(iter(EvidenceKind))
    entry = log.append("fl_conflict", kind, "test", {"note": "after a conflict"})
    assert sent == ["TransactWriteItems", "TransactWriteItems"]
    assert entry.seq == 1
    assert [e.seq for e in log.entries("fl_conflict")] == [1]
