"""The local captcha's challenges on DynamoDB (``captchas``): spent by one conditional update."""

from __future__ import annotations

from datetime import timedelta

from pynamodb.exceptions import UpdateError

from chalicelib.adapters.dynamo.base import utc_aware
from chalicelib.adapters.dynamo.models_sms import CaptchaModel
from chalicelib.captcha.domain import StoredChallenge
from chalicelib.captcha.ports import ChallengeStore
from chalicelib.kernel.clock import utc_now

#: Challenges outlive their expiry by this much, then TTL purges them.
_KEEP = timedelta(hours=1)


class DynamoChallengeStore(ChallengeStore):
    """``captchas`` (bound by ``models.bind``)."""

    def put(self, challenge: StoredChallenge) -> None:
        CaptchaModel(
            challenge.challenge_id,
            answer_hash=challenge.answer_hash,
            expires_at=challenge.expires_at,
            expires_epoch=int((challenge.expires_at + _KEEP).timestamp()),
        ).save(condition=CaptchaModel.challenge_id.does_not_exist())

    def take(self, challenge_id: str) -> StoredChallenge | None:
        item = CaptchaModel(challenge_id)
        try:
            item.update(
                actions=[CaptchaModel.spent_at.set(utc_now())],
                condition=CaptchaModel.challenge_id.exists() & CaptchaModel.spent_at.does_not_exist(),
            )
        except UpdateError as exc:
            if exc.cause_response_code != "ConditionalCheckFailedException":
                raise
            return None
        return StoredChallenge(
            challenge_id=item.challenge_id,
            answer_hash=item.answer_hash,
            expires_at=utc_aware(item.expires_at),
        )
