"""The Mailgun token memory: retries pass, reuse on another body does not."""

from __future__ import annotations

from connectors.webhook_auth.tokens import TokenCache


def test_a_token_is_bound_to_its_first_body_until_it_expires() -> None:
    cache = TokenCache()
    assert cache.claim("t1", b"body", forget_at=100.0, now=10.0)
    assert cache.claim("t1", b"body", forget_at=100.0, now=20.0)  # a retry
    assert not cache.claim("t1", b"other", forget_at=100.0, now=30.0)
    # Once its timestamp is stale the freshness check refuses it anyway,
    # and the cache lets it go.
    assert cache.claim("t1", b"other", forget_at=300.0, now=101.0)


def test_the_cache_forgets_expired_tokens_and_stays_bounded() -> None:
    cache = TokenCache(max_tokens=3)
    for i in range(5):
        cache.claim(f"t{i}", b"x", forget_at=50.0 + i, now=0.0)
    assert len(cache) == 3
    cache.claim("late", b"x", forget_at=500.0, now=60.0)  # every earlier one expired
    assert len(cache) == 1
