"""The handlers of the fleet review workflow's tasks, by task kind (``TaskMessage.task``).

``chalicelib.fleet.tasks.run_task`` looks a message's handler up here. A handler returning a dict has
the message's task token succeeded with it; returning None leaves the token to a person (the handler
stored it); raising a ``DomainError`` fails the token. Each handler imports its module on first call, so
that the task consumer pays only for the kinds it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.fleet.tasks import TaskMessage

TaskResult = dict[str, Any] | None
Handler = Callable[["TaskMessage"], TaskResult]


def automatic_checks(message: TaskMessage) -> TaskResult:
    """USCC, name against the licence as read, documents present and readable, cards per ID; opens the
    round of the case and answers the outcome with the reminder and the deadline."""
    from chalicelib.fleet import checks

    return checks.run_automatic_checks(message)


def review(message: TaskMessage) -> TaskResult:
    """A review task (stage first, lead or second): its token waits on the case for a decision."""
    from chalicelib.fleet import cases

    cases.on_review_task(message)
    return None


def await_resubmission(message: TaskMessage) -> TaskResult:
    """The wait for the enterprise's replaced documents: its token waits on the case."""
    from chalicelib.fleet import cases

    if cases.on_await_resubmission(message):
        return {"resubmitted": True}  # resubmitted before the wait began: the workflow goes on at once
    return None


def remind(message: TaskMessage) -> TaskResult:
    """The reminder of a case not decided by its reminder time (no token: a plain notification)."""
    from chalicelib.fleet import cases

    cases.on_remind(message)
    return None


def prepare_cards(message: TaskMessage) -> TaskResult:
    """The chunks of the approved batch's cards."""
    from chalicelib.fleet import apply

    return apply.prepare_cards(message)


def apply_chunk(message: TaskMessage) -> TaskResult:
    """One chunk's cards registered (or de-registered) and pushed through the outbox, idempotently."""
    from chalicelib.fleet import apply

    return apply.apply_chunk(message)


def notify(message: TaskMessage) -> TaskResult:
    """The enterprise told of an outcome (SMS and portal)."""
    from chalicelib.fleet import apply

    apply.notify(message)
    return None


HANDLERS: dict[str, Handler] = {
    "automatic_checks": automatic_checks,
    "review": review,
    "await_resubmission": await_resubmission,
    "remind": remind,
    "prepare_cards": prepare_cards,
    "apply_chunk": apply_chunk,
    "notify": notify,
}
