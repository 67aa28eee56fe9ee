"""The SMTP relay sink when the server refuses, hangs up or is slow."""

from __future__ import annotations

import pytest

from mailyard.outbound import Outcome
from sinks.smtp_relay import SmtpRelay
from tests.smtp_fixtures import (  # noqa: F401
    SmtpServerProcess,
    fault,
    free_port,
    make_delivery,
    relay_for,
    smtp_server,
)


@pytest.mark.parametrize(
    ("stage", "reply", "outcome"),
    [
        ("rcpt", "451 4.7.1 Try again later", "deferred"),
        ("rcpt", "550 5.1.1 User unknown", "bounced"),
        ("mail", "452 4.3.1 Insufficient system storage", "deferred"),
        ("data", "554 5.7.1 Message content rejected", "bounced"),
        ("data", "550 5.7.1 Service temporarily rate limited", "deferred"),
    ],
)
async def test_server_reply_becomes_the_outcome_with_its_own_text(
    smtp_server: SmtpServerProcess, stage: str, reply: str, outcome: Outcome
) -> None:
    smtp_server.set_mode(fault(stage, reply))
    async with relay_for(smtp_server) as relay:
        result = await relay.send(make_delivery())

    code, _, text = reply.partition(" ")
    assert result.outcome == outcome
    assert result.smtp_code == int(code)
    assert result.detail == text
    assert result.enhanced_status == text.split()[0]
    assert smtp_server.messages() == []


async def test_refused_recipient_leaves_other_recipients_and_the_connection_alone(
    smtp_server: SmtpServerProcess,
) -> None:
    unknown = "gone@example.test"
    smtp_server.set_mode(fault("rcpt", "550 5.1.1 User unknown", recipients=[unknown]))
    async with relay_for(smtp_server) as relay:
        refused = await relay.send(make_delivery(1, recipient=unknown))
        delivered = await relay.send(make_delivery(2))

    assert (refused.outcome, delivered.outcome) == ("bounced", "accepted")
    assert [m["rcpt_tos"] for m in smtp_server.messages()] == [["rcpt@example.test"]]
    assert smtp_server.stats()["connections"] == 1


async def test_hang_up_mid_session_defers_and_the_next_send_reconnects(
    smtp_server: SmtpServerProcess,
) -> None:
    smtp_server.set_mode(fault("data", drop=True, times=1))
    async with relay_for(smtp_server) as relay:
        dropped = await relay.send(make_delivery(1))
        retried = await relay.send(make_delivery(2))

    assert dropped.outcome == "deferred" and dropped.smtp_code is None
    assert retried.outcome == "accepted"
    assert smtp_server.stats()["connections"] == 2


async def test_421_defers_and_the_next_send_reconnects(
    smtp_server: SmtpServerProcess,
) -> None:
    smtp_server.set_mode(fault("mail", "421 4.7.0 Too many connections", times=1))
    async with relay_for(smtp_server) as relay:
        closed = await relay.send(make_delivery(1))
        retried = await relay.send(make_delivery(2))

    assert (closed.outcome, closed.smtp_code) == ("deferred", 421)
    assert retried.outcome == "accepted"
    assert smtp_server.stats()["connections"] == 2


async def test_idle_connection_the_server_dropped_is_replaced_silently(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        await relay.send(make_delivery(1))
        smtp_server.set_mode(fault("rset", drop=True, times=1))
        result = await relay.send(make_delivery(2))

    assert result.outcome == "accepted"
    assert smtp_server.stats()["connections"] == 2
    assert len(smtp_server.messages()) == 2


async def test_slow_server_times_out_as_deferred_and_is_not_reused(
    smtp_server: SmtpServerProcess,
) -> None:
    smtp_server.set_mode(fault("data", delay_s=1.5, times=1))
    async with relay_for(smtp_server, timeout_s=0.3) as relay:
        slow = await relay.send(make_delivery(1))
        retried = await relay.send(make_delivery(2))

    assert slow.outcome == "deferred"
    assert "Timed out" in slow.detail
    assert retried.outcome == "accepted"
    assert smtp_server.stats()["connections"] == 2


async def test_refused_connection_is_deferred_with_the_reason() -> None:
    # A port nobody listens on: the probe socket that found it is closed.
    async with SmtpRelay(host="127.0.0.1", port=free_port(), timeout_s=2) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "deferred"
    assert "Connect call failed" in result.detail
