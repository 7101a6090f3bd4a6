"""Housekeeping (the purge schedule): abandoned registrations and flows, expired before submission,
deleted with their photos; one waiting for a reviewer kept as long as its review window; submissions
whose request died recovered."""

from __future__ import annotations

from chalicelib.kernel.clock import Clock, utc_now
from chalicelib.registration.ports import RegistrationRepository
from chalicelib.registration.records import Registrations
from chalicelib.registration.submit import Submission
from chalicelib.verification.service import VerificationService


class Housekeeping:
    def __init__(
        self,
        store: RegistrationRepository,
        registrations: Registrations,
        verification: VerificationService,
        submission: Submission,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._registrations = registrations
        self._verification = verification
        self._submission = submission
        self._clock = clock

    def purge_abandoned(self, limit: int = 100) -> dict[str, int]:
        """Counts of registrations and flows deleted, and of stuck submissions finished or released."""
        now = self._clock()
        registrations = 0
        for reg in self._store.expired_open(now, limit):
            in_review = self._registrations.in_review(reg)
            if in_review is not None:
                self._registrations.save(reg, expires_at=in_review.expires_at)
            elif self._store.delete_expired(reg, now):
                registrations += 1
        flows = self._verification.purge_expired(limit)
        return {"registrations": registrations, "flows": flows, **self._submission.recover_stuck(limit)}
