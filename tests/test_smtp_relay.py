"""The SMTP relay sink against a real SMTP server process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
from typing import Any

import pytest

from mailyard.errors import ConfigError
from mailyard.outbound import MESSAGE_ID_HEADER
from sinks.smtp_relay import RelayClosedError, SmtpRelay
from tests.smtp_fixtures import (  # noqa: F401
    ServerFactory,
    SmtpServerProcess,
    TlsFiles,
    fault,
    make_delivery,
    relay_for,
    smtp_auth_server,
    smtp_server,
    smtp_server_factory,
    smtp_tls_server,
)

# --- delivery -----------------------------------------------------------------


async def test_delivered_message_is_recorded_with_our_message_id_header(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        result = await relay.send(make_delivery(7))

    [recorded] = smtp_server.messages()
    parsed = email.message_from_string(recorded["data"], policy=email.policy.SMTP)
    assert result.outcome == "accepted"
    assert result.smtp_code == 250 and result.enhanced_status == "2.0.0"
    assert result.provider_message_id is not None
    assert result.detail.endswith(result.provider_message_id)
    assert parsed[MESSAGE_ID_HEADER] == "msg-7"
    assert parsed["Message-ID"].endswith("@mailyard.test>")
    assert recorded["mail_from"] == "sender@mailyard.test"
    assert recorded["rcpt_tos"] == ["rcpt@example.test"]


async def test_text_and_html_are_sent_as_multipart_alternative_html_last(
    smtp_server: SmtpServerProcess,
) -> None:
    delivery = make_delivery(text="Grüße", html="<p>Grüße</p>", headers={"X-Tag": "a"})
    async with relay_for(smtp_server) as relay:
        await relay.send(delivery)

    [recorded] = smtp_server.messages()
    parsed = email.message_from_string(recorded["data"], policy=email.policy.SMTP)
    assert recorded["data"].isascii()
    assert parsed.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in parsed.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    assert parsed["X-Tag"] == "a"


async def test_raw_mime_is_sent_unchanged_below_our_header(
    smtp_server: SmtpServerProcess,
) -> None:
    raw = (
        b"Message-ID: <given@example.test>\r\nSubject: raw\r\n"
        b"X-Mailyard-Message-Id: stale\r\n\r\nBody line\r\n"
    )
    async with relay_for(smtp_server) as relay:
        await relay.send(make_delivery(3, raw_mime=raw))

    [recorded] = smtp_server.messages()
    assert recorded["data"] == (
        "X-Mailyard-Message-Id: msg-3\r\nMessage-ID: <given@example.test>\r\n"
        "Subject: raw\r\n\r\nBody line\r\n"
    )


async def test_raw_8bit_mime_arrives_byte_for_byte(
    smtp_server: SmtpServerProcess,
) -> None:
    raw = "Subject: 8bit\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n"
    async with relay_for(smtp_server) as relay:
        result = await relay.send(make_delivery(4, raw_mime=raw.encode()))

    [recorded] = smtp_server.messages()
    assert result.outcome == "accepted"
    assert recorded["data"].endswith("\r\n\r\nGrüße\r\n")


async def test_non_ascii_address_is_sent_with_smtputf8(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        result = await relay.send(make_delivery(recipient="Jörg <jörg@example.test>"))

    [recorded] = smtp_server.messages()
    assert result.outcome == "accepted"
    assert recorded["rcpt_tos"] == ["jörg@example.test"]
    assert "To: Jörg <jörg@example.test>\r\n" in recorded["data"]


async def test_non_ascii_address_fails_when_the_server_lacks_smtputf8(
    smtp_server_factory: ServerFactory,
) -> None:
    server = smtp_server_factory(smtputf8=False)
    async with relay_for(server) as relay:
        result = await relay.send(make_delivery(recipient="jörg@example.test"))

    assert result.outcome == "failed"
    assert "SMTPUTF8" in result.detail
    assert server.messages() == []


async def test_malformed_delivery_fails_without_contacting_the_server(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        no_address = await relay.send(make_delivery(recipient="nobody"))
        injected = await relay.send(make_delivery(subject="hi\r\nBcc: x@evil.test"))

    assert no_address.outcome == injected.outcome == "failed"
    assert "line break" in injected.detail
    assert smtp_server.stats()["connections"] == 0


# --- connection reuse and concurrency -----------------------------------------


async def test_sequential_sends_share_one_connection(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        results = [await relay.send(make_delivery(n)) for n in range(10)]

    assert {result.outcome for result in results} == {"accepted"}
    assert smtp_server.stats()["connections"] == 1
    assert {message["connection"] for message in smtp_server.messages()} == {1}


async def test_connection_is_replaced_after_max_messages_per_connection(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server, max_messages_per_connection=3) as relay:
        for n in range(7):
            await relay.send(make_delivery(n))

    assert smtp_server.stats()["connections"] == 3
    assert relay.connections_opened == 3


async def test_concurrent_sends_never_exceed_max_connections(
    smtp_server: SmtpServerProcess,
) -> None:
    smtp_server.set_mode(fault("data", delay_s=0.2))
    async with relay_for(smtp_server, max_connections=2) as relay:
        sends = [relay.send(make_delivery(n)) for n in range(8)]
        results = await asyncio.gather(*sends)

    stats = smtp_server.stats()
    assert {result.outcome for result in results} == {"accepted"}
    assert stats["peak_active"] == 2
    assert stats["connections"] == 2
    assert len(smtp_server.messages()) == 8


async def test_send_after_aclose_raises(smtp_server: SmtpServerProcess) -> None:
    relay = relay_for(smtp_server)
    await relay.send(make_delivery())
    await relay.aclose()

    with pytest.raises(RelayClosedError):
        await relay.send(make_delivery())
    # The server notices the QUIT and the closed socket a moment later.
    for _ in range(50):
        if smtp_server.stats()["active"] == 0:
            break
        await asyncio.sleep(0.1)
    assert smtp_server.stats()["active"] == 0


@pytest.mark.parametrize(
    "options",
    [{"starttls": "sometimes"}, {"max_connections": 0}, {"username": "only-me"}],
)
def test_invalid_options_are_refused_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        SmtpRelay(host="127.0.0.1", port=25, **options)


# --- STARTTLS -----------------------------------------------------------------


async def test_required_starttls_upgrades_with_a_trusted_certificate(
    smtp_tls_server: tuple[SmtpServerProcess, TlsFiles],
) -> None:
    server, files = smtp_tls_server
    context = files.client_context()
    async with relay_for(server, starttls="required", tls_context=context) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "accepted"
    assert [message["tls"] for message in server.messages()] == [True]


async def test_required_starttls_defers_when_the_server_does_not_offer_it(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server, starttls="required") as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "deferred"
    assert "STARTTLS is required" in result.detail
    assert smtp_server.messages() == []


async def test_opportunistic_starttls_sends_in_clear_when_not_offered(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "accepted"
    assert [message["tls"] for message in smtp_server.messages()] == [False]


async def test_untrusted_certificate_defers_with_the_tls_error(
    smtp_tls_server: tuple[SmtpServerProcess, TlsFiles],
) -> None:
    server, _files = smtp_tls_server
    async with relay_for(server) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "deferred"
    assert "CERTIFICATE_VERIFY_FAILED" in result.detail
    assert server.messages() == []


async def test_starttls_off_never_upgrades(
    smtp_tls_server: tuple[SmtpServerProcess, TlsFiles],
) -> None:
    server, _files = smtp_tls_server
    async with relay_for(server, starttls="off") as relay:
        await relay.send(make_delivery())

    assert [message["tls"] for message in server.messages()] == [False]


# --- AUTH ---------------------------------------------------------------------


async def test_login_with_the_right_credentials_delivers(
    smtp_auth_server: SmtpServerProcess,
) -> None:
    credentials = {"username": "relay-user", "password": "relay-pass"}
    async with relay_for(smtp_auth_server, **credentials) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "accepted"
    assert [message["login"] for message in smtp_auth_server.messages()] == [
        "relay-user"
    ]


async def test_refused_login_is_failed_with_the_server_text(
    smtp_auth_server: SmtpServerProcess,
) -> None:
    credentials = {"username": "relay-user", "password": "wrong"}
    async with relay_for(smtp_auth_server, **credentials) as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "failed"
    assert result.smtp_code == 535 and result.enhanced_status == "5.7.8"
    assert result.detail == "5.7.8 Authentication credentials invalid"
    assert smtp_auth_server.messages() == []


async def test_credentials_for_a_server_without_auth_are_failed(
    smtp_server: SmtpServerProcess,
) -> None:
    async with relay_for(smtp_server, username="u", password="p") as relay:
        result = await relay.send(make_delivery())

    assert result.outcome == "failed"
    assert "offers no AUTH" in result.detail
