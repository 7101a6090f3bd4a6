"""Sessions on DynamoDB: a rotation is one update conditional on the generation read and no revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, UpdateError

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_sessions import SessionModel
from chalicelib.sessions.domain import RevokeReason, SessionKind, StoredSession
from chalicelib.sessions.ports import SessionStore

#: Items outlive their session by this much (a revoked session still answers "signed out"), then TTL.
_KEEP = timedelta(days=1)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _epoch(at: datetime) -> int:
    return int((at + _KEEP).timestamp())


def _session(item: SessionModel) -> StoredSession:
    return StoredSession(
        session_id=item.session_id,
        kind=SessionKind(item.kind),
        subject=item.subject,
        roles=tuple(item.roles or ()),
        token_hash=item.token_hash,
        previous_hash=item.previous_hash,
        generation=int(item.generation),
        created_at=utc_aware(item.created_at),
        rotated_at=utc_aware(item.rotated_at),
        idle_expires_at=utc_aware(item.idle_expires_at),
        expires_at=utc_aware(item.expires_at),
        revoked_at=utc_aware(item.revoked_at) if item.revoked_at else None,
        revoked_reason=RevokeReason(item.revoked_reason) if item.revoked_reason else None,
    )


class DynamoSessionStore(SessionStore):
    """``sessions`` (model bound by ``models.bind``)."""

    def create(self, session: StoredSession) -> None:
        SessionModel(
            session.session_id,
            kind=session.kind.value,
            subject=session.subject,
            roles=list(session.roles),
            token_hash=session.token_hash,
            previous_hash=session.previous_hash,
            generation=session.generation,
            created_at=session.created_at,
            rotated_at=session.rotated_at,
            idle_expires_at=session.idle_expires_at,
            expires_at=session.expires_at,
            expires_epoch=_epoch(session.ends_at()),
        ).save(condition=SessionModel.session_id.does_not_exist())

    def get(self, session_id: str) -> StoredSession | None:
        try:
            return _session(SessionModel.get(session_id, consistent_read=True))
        except DoesNotExist:
            return None

    def rotate(
        self, session: StoredSession, token_hash: str, now: datetime, idle_expires_at: datetime
    ) -> bool:
        item = SessionModel(session.session_id)
        try:
            item.update(
                actions=[
                    SessionModel.previous_hash.set(session.token_hash),
                    SessionModel.token_hash.set(token_hash),
                    SessionModel.generation.set(session.generation + 1),
                    SessionModel.rotated_at.set(now),
                    SessionModel.idle_expires_at.set(idle_expires_at),
                    SessionModel.expires_epoch.set(_epoch(min(idle_expires_at, session.expires_at))),
                ],
                condition=(SessionModel.generation == session.generation)
                & SessionModel.revoked_at.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def revoke(self, session_id: str, now: datetime, reason: RevokeReason) -> None:
        item = SessionModel(session_id)
        try:
            item.update(
                actions=[SessionModel.revoked_at.set(now), SessionModel.revoked_reason.set(reason.value)],
                condition=SessionModel.session_id.exists() & SessionModel.revoked_at.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != _CONDITION_FAILED:
                raise  # gone, or revoked already: the first reason stays

    def of_subject(self, subject: str) -> list[str]:
        return [str(i.session_id) for i in SessionModel.by_subject.query(subject)]
