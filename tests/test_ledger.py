"""The ledger counts each event once, across duplicates and replays."""

from __future__ import annotations

from datetime import datetime, timezone

from mailyard.model import EmailEvent
from streams.ledger import Ledger, query_counts

T0 = datetime(2026, 12, 3, 10, 0, 30, tzinfo=timezone.utc)


def _event(event_id: str, type_: str = "delivered", esp: str = "sendgrid") -> EmailEvent:
    return EmailEvent(event_id, type_, esp, type_, T0, subaccount="acme")  # type: ignore[arg-type]


def _ledger() -> tuple[Ledger, dict[str, object]]:
    table: dict[str, object] = {}
    return Ledger(table, table.__setitem__), table


def test_duplicate_event_ids_are_counted_once() -> None:
    ledger, table = _ledger()
    assert ledger.apply(_event("a"), 0, 0, 0) is True
    assert ledger.apply(_event("a"), 0, 7, 0) is False
    assert query_counts(table.items()) == {("acme", "sendgrid", "delivered"): 1}


def test_replay_after_lost_seen_marks_does_not_count_twice() -> None:
    ledger, table = _ledger()
    ledger.apply(_event("a"), 1, 10, 0)
    ledger.apply(_event("b"), 1, 11, 0)
    # A crash lost the seen marks but not the stamped counts: replay both.
    for key in [k for k in table if k.startswith("s|")]:
        del table[key]
    assert ledger.apply(_event("a"), 1, 10, 0) is False
    assert ledger.apply(_event("b"), 1, 11, 0) is False
    assert query_counts(table.items()) == {("acme", "sendgrid", "delivered"): 2}


def test_minute_buckets_answer_time_ranges() -> None:
    ledger, table = _ledger()
    ledger.apply(_event("a", "opened"), 0, 0, 0)
    minute = int(T0.timestamp()) // 60
    inside = query_counts(table.items(), start_minute=minute, end_minute=minute + 1)
    after = query_counts(table.items(), start_minute=minute + 1)
    assert inside == {("acme", "sendgrid", "opened"): 1}
    assert after == {}


def test_counts_filter_by_esp_and_type() -> None:
    ledger, table = _ledger()
    ledger.apply(_event("a", "opened", "mailgun"), 0, 0, 0)
    ledger.apply(_event("b", "clicked", "mailgun"), 0, 1, 0)
    ledger.apply(_event("c", "clicked", "sendgrid"), 2, 0, 0)
    got = query_counts(table.items(), esp="mailgun", type_="clicked")
    assert got == {("acme", "mailgun", "clicked"): 1}
    assert sum(query_counts(table.items(), type_="clicked").values()) == 2
