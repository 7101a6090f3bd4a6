"""Staff logouts on DynamoDB (``staff-revocations``, model bound by ``models.bind``)."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist

from chalicelib.adapters.dynamo.models_staff import StaffRevocationModel

#: Items outlive the token they revoke by a day, then TTL removes them.
_KEEP_SECONDS = 24 * 3600


class DynamoStaffRevocations:
    """Revoked staff sign-ins: ``revoke`` at logout, ``is_revoked`` on every staff request."""

    def revoke(self, revocation_key: str, subject: str, token_expires_at: int, now: datetime) -> None:
        """Record the revocation (idempotent: a second logout of the same sign-in overwrites it)."""
        StaffRevocationModel(
            revocation_key,
            subject=subject,
            revoked_at=now,
            token_expires_epoch=token_expires_at,
            expires_epoch=token_expires_at + _KEEP_SECONDS,
        ).save()

    def is_revoked(self, revocation_key: str) -> bool:
        try:
            StaffRevocationModel.get(
                revocation_key, consistent_read=True, attributes_to_get=["revocation_key"]
            )
        except DoesNotExist:
            return False
        return True
