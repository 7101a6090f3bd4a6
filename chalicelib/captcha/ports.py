"""Ports of captcha challenges: the captcha itself, and where a local one keeps its challenges."""

from __future__ import annotations

from abc import ABC, abstractmethod

from chalicelib.captcha.domain import Challenge, StoredChallenge


class Captcha(ABC):
    """Issues challenges and checks answers, each challenge answerable once.

    ``chalicelib.captcha.service.LocalCaptcha`` draws its own pictures; a deployed stage may plug a
    provider's captcha (e.g. a cloud vendor's slider or picture captcha) behind the same two calls,
    ``issue`` returning what its widget needs and ``verify`` asking the provider.
    """

    @abstractmethod
    def issue(self) -> Challenge:
        """A new challenge to show the person."""

    @abstractmethod
    def verify(self, challenge_id: str, answer: str) -> bool:
        """Whether ``answer`` answers the challenge; the challenge is spent whatever the answer."""


class ChallengeStore(ABC):
    """Challenges of the local captcha (answers as keyed hashes, purged after expiry)."""

    @abstractmethod
    def put(self, challenge: StoredChallenge) -> None: ...

    @abstractmethod
    def take(self, challenge_id: str) -> StoredChallenge | None:
        """The challenge, marked spent atomically; None when unknown or already spent."""
