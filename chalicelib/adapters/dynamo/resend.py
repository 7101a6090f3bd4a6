"""Whether a transaction that chains an evidence entry landed, and whether it may be sent again as it is.

A transaction sent with a ``ClientRequestToken`` can be sent again with the same token and the same
parameters: DynamoDB answers it as done when the first send committed (within ten minutes), and with
``TransactionInProgressException`` (or a cancellation for a conflict) while that send is still
committing. Sending it again is then the way to learn how it ended. A new transaction (a new entry, a
new token) is prepared only when a condition refused the one sent: the same token with other
parameters would be refused as ``IdempotentParameterMismatchException``.

A transaction of this code base that chains an entry is told landed by the entry itself: found in the
chain (strongly consistent read), with the hash it was prepared with.
"""

from __future__ import annotations

from collections.abc import Iterable

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamo.models import EvidenceModel
from chalicelib.core.outbound import error_code_in
from chalicelib.verification.domain.evidence import EvidenceEntry

_IN_PROGRESS = "TransactionInProgressException"


def landed(prepared: Iterable[EvidenceEntry]) -> EvidenceEntry | None:
    """The entry of ``prepared`` that is stored as it was prepared (the transaction that chains it
    landed), or None."""
    for entry in prepared:
        try:
            stored = EvidenceModel.get(entry.flow_id, entry.seq, consistent_read=True)
        except DoesNotExist:
            continue
        if stored.hash == entry.hash:
            return entry
    return None


def in_progress(exc: BaseException) -> bool:
    """Whether ``exc`` (the ``Unavailable`` lifted from a transaction's error) is DynamoDB's answer to a
    transaction sent again while the send of its token is still committing: it wrote nothing of its
    own, and the same transaction sent again a moment later learns how the first ended."""
    return error_code_in(exc, _IN_PROGRESS)


def cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` (PynamoDB's ``TransactWriteError``) is a cancellation, the only failure whose
    reasons say what refused it; any other (a malformed request, a token sent with other parameters)
    is raised as it is."""
    return getattr(exc, "cause_response_code", None) == "TransactionCanceledException"
