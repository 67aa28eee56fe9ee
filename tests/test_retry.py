"""The retry policy: exponential backoff with jitter, bounded by age and attempts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailyard.errors import ConfigError
from mailyard.outbound import SendResult
from sinks.retry import RetryPolicy

DEFERRED = SendResult("deferred", "4.7.1 Try again later", 451, "4.7.1")
START = 1_700_000_000.0


def policy(**options: object) -> RetryPolicy:
    options.setdefault("rng", random.Random(7))
    return RetryPolicy(**options)  # type: ignore[arg-type]


def test_delays_double_from_base_until_the_cap_without_jitter() -> None:
    steady = policy(jitter=0)

    delays = [steady.next_attempt(START, n, START, DEFERRED) for n in range(1, 10)]

    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


@given(attempt=st.integers(1, 40), seed=st.integers(0, 2**32))
def test_jitter_stays_within_the_fraction_and_under_the_cap(
    attempt: int, seed: int
) -> None:
    jittered = policy(rng=random.Random(seed))
    plain = min(jittered.backoff(attempt), jittered.max_backoff_s)

    delay = jittered.next_attempt(START, attempt, START, DEFERRED)

    assert delay is not None
    assert plain * 0.8 <= delay <= min(plain * 1.2, 3600)


def test_jitter_spreads_delays_and_is_reproducible_with_a_seed() -> None:
    def draws(seed: int) -> list[float | None]:
        seeded = policy(rng=random.Random(seed))
        return [seeded.next_attempt(START, 3, START, DEFERRED) for _ in range(20)]

    assert draws(1) == draws(1)
    assert len(set(draws(1))) == 20


def test_a_longer_retry_after_from_the_server_wins() -> None:
    throttled = SendResult("deferred", "4.7.0 [TSS04]", 421, retry_after_s=7200)
    hurried = SendResult("deferred", "4.7.0 busy", 421, retry_after_s=1)
    steady = policy(jitter=0)

    assert steady.next_attempt(START, 1, START, throttled) == 7200
    assert steady.next_attempt(START, 1, START, hurried) == 30


def test_gives_up_once_the_message_is_max_age_old() -> None:
    three_days = 72 * 3600

    assert policy().next_attempt(START, 50, START + three_days, DEFERRED) is None


def test_last_wait_is_shortened_to_end_on_the_deadline() -> None:
    steady = policy(jitter=0)
    ten_seconds_left = START + 72 * 3600 - 10

    assert steady.next_attempt(START, 20, ten_seconds_left, DEFERRED) == 10


def test_gives_up_when_the_server_asks_to_wait_past_the_deadline() -> None:
    throttled = SendResult("deferred", "4.7.0 [TSS05]", 421, retry_after_s=4 * 3600)
    one_hour_left = START + 71 * 3600

    assert policy().next_attempt(START, 20, one_hour_left, throttled) is None


def test_gives_up_after_max_attempts() -> None:
    limited = policy(max_attempts=3)

    assert limited.next_attempt(START, 2, START, DEFERRED) is not None
    assert limited.next_attempt(START, 3, START, DEFERRED) is None


@pytest.mark.parametrize("outcome", ["accepted", "bounced", "failed"])
def test_only_deferred_results_are_retried(outcome: str) -> None:
    final = SendResult(outcome, "done")  # type: ignore[arg-type]

    assert policy().next_attempt(START, 1, START, final) is None


def test_huge_attempt_numbers_stay_at_the_cap() -> None:
    steep = policy(factor=10, jitter=0)

    assert steep.next_attempt(START, 10_000, START, DEFERRED) == 3600


@pytest.mark.parametrize(
    "options",
    [
        {"base_s": 0},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"max_backoff_s": 10},
        {"max_age_s": -1},
        {"max_attempts": 0},
    ],
)
def test_nonsense_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        policy(**options)
