"""The outbox's pure rules: backoff with full jitter, the one-ID limit (第十一条), minimal functions
(第十四条)."""

from __future__ import annotations

import random
import statistics

import pytest
from pydantic import ValidationError

from chalicelib.cards.domain.inventory import CardFunction
from chalicelib.cards.domain.lifecycle import PushKind
from chalicelib.cards.domain.limits import (
    CARDS_PER_ID_LIMIT,
    HolderKind,
    check_cards_per_id,
    counts_toward_limit,
)
from chalicelib.kernel.errors import Conflict
from chalicelib.kernel.operators import Operator
from chalicelib.operators.domain.outbox import (
    RetryPolicy,
    opened_functions,
    requested_functions,
)

ALL = [CardFunction.EMERGENCY, CardFunction.TELEMATICS, CardFunction.DATA]


def test_the_backoff_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=2, cap_seconds=60, max_attempts=10)
    assert [policy.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000) == 60  # no overflow for absurd attempt counts
    with pytest.raises(ValueError, match="from 1"):
        policy.ceiling(0)


def test_full_jitter_delays_stay_within_zero_and_the_ceiling() -> None:
    policy = RetryPolicy(base_seconds=1.5, cap_seconds=900, max_attempts=20)
    rng = random.Random(42)
    for attempt in range(1, 20):
        ceiling = policy.ceiling(attempt)
        delays = [policy.next_delay(attempt, rng) for _ in range(300)]
        assert all(d is not None and 0 <= d <= ceiling + 1 for d in delays)  # whole seconds, rounded up
        assert all(isinstance(d, int) for d in delays)
    # Spread over the whole range (full jitter), not bunched at the ceiling
    samples = [policy.next_delay(10, rng) or 0 for _ in range(2000)]
    assert min(samples) <= 10
    assert max(samples) >= 750
    assert 350 <= statistics.mean(samples) <= 420  # ceiling 768: the mean is about half


def test_no_attempt_is_left_after_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    rng = random.Random(1)
    assert policy.next_delay(2, rng) is not None
    assert policy.next_delay(3, rng) is None
    assert policy.next_delay(4, rng) is None


def test_the_cap_cannot_exceed_the_longest_sqs_delay() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(cap_seconds=901)
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)


def test_ten_cards_per_id_per_operator_then_refused() -> None:
    assert CARDS_PER_ID_LIMIT == 10
    for active in range(10):
        check_cards_per_id(active, Operator.CHINA_MOBILE)
    with pytest.raises(Conflict) as info:
        check_cards_per_id(10, Operator.CHINA_MOBILE)
    err = info.value
    assert (err.code, err.status, err.field) == ("registration.cards_per_id_exceeded", 409, "id_number")
    assert "中国移动营业厅" in err.message_zh
    assert "第十一条" in err.message_zh
    assert "China Mobile business hall" in err.message_en
    assert err.details == {"operator": "china_mobile", "limit": 10}


@pytest.mark.parametrize(
    ("operator", "zh"),
    [
        (Operator.CHINA_UNICOM, "中国联通"),
        (Operator.CHINA_TELECOM, "中国电信"),
        (Operator.CHINA_BROADNET, "中国广电"),
    ],
)
def test_the_refusal_names_the_cards_operator(operator: Operator, zh: str) -> None:
    with pytest.raises(Conflict) as info:
        check_cards_per_id(12, operator)
    assert f"{zh}营业厅" in info.value.message_zh


def test_only_individuals_count_toward_the_limit() -> None:
    assert counts_toward_limit(HolderKind.INDIVIDUAL)
    assert not counts_toward_limit(HolderKind.ENTERPRISE)


def test_pushes_request_the_minimal_necessary_functions() -> None:
    assert requested_functions(PushKind.REGISTER) == ALL
    assert requested_functions(PushKind.TRANSFER) == ALL
    assert requested_functions(PushKind.DEREGISTER) == [CardFunction.EMERGENCY]


def test_a_card_never_gets_more_than_was_requested() -> None:
    # What the operator reports, within what was asked, emergency always kept
    assert opened_functions(ALL, [CardFunction.TELEMATICS]) == [
        CardFunction.EMERGENCY,
        CardFunction.TELEMATICS,
    ]
    assert opened_functions([CardFunction.EMERGENCY], ALL) == [CardFunction.EMERGENCY]
    # An acceptance that does not list them opened what was requested
    assert opened_functions(ALL, []) == ALL
