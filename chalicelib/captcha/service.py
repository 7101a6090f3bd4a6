"""The local captcha: PNG pictures drawn here (``chalicelib.captcha.domain``), answers kept keyed-hashed."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from chalicelib.captcha.domain import (
    Challenge,
    StoredChallenge,
    answer_digest_input,
    data_url,
    is_valid,
    new_answer,
    render_png,
)
from chalicelib.captcha.ports import Captcha, ChallengeStore
from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.kernel.crypto import KeyedHasher

#: Longest answer looked at (anything longer is wrong without hashing it).
_MAX_ANSWER = 16


class LocalCaptcha(Captcha):
    """Draws a distorted five-character picture; one try per challenge, valid ``ttl``."""

    def __init__(
        self,
        store: ChallengeStore,
        hasher: KeyedHasher,
        *,
        clock: Clock = utc_now,
        ttl: timedelta = timedelta(minutes=5),
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._hasher = hasher
        self._clock = clock
        self._ttl = ttl
        self._rng = rng or random.SystemRandom()

    def issue(self) -> Challenge:
        challenge_id = secrets.token_urlsafe(18)
        answer = new_answer(self._rng)
        self._store.put(
            StoredChallenge(
                challenge_id=challenge_id,
                answer_hash=self._hasher.digest(answer_digest_input(challenge_id, answer)),
                expires_at=self._clock() + self._ttl,
            )
        )
        return Challenge(
            challenge_id=challenge_id,
            image=data_url(render_png(answer, self._rng)),
            expires_in=int(self._ttl.total_seconds()),
        )

    def verify(self, challenge_id: str, answer: str) -> bool:
        if not challenge_id or len(challenge_id) > 64:
            return False
        stored = self._store.take(challenge_id)  # spent whatever the answer: one try
        if stored is None or len(answer) > _MAX_ANSWER:
            return False
        given = self._hasher.digest(answer_digest_input(challenge_id, answer))
        return is_valid(stored, given, self._clock())
