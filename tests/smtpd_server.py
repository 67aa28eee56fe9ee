"""A real SMTP server for tests, run as its own process, steered over HTTP.

Run::

    python -m tests.smtpd_server --port N --control-port M \\
        [--tls-cert cert.pem --tls-key key.pem] [--auth user:pass] [--no-smtputf8]

Both ports bind 127.0.0.1 only. The SMTP side is aiosmtpd; it offers
STARTTLS when given a certificate and AUTH PLAIN/LOGIN when given
credentials (over plain text too, as a test relay may), and SMTPUTF8
unless told not to. The control side
is a tiny JSON-over-HTTP endpoint:

``GET /health``
    ``{"ok": true}`` once both sides listen.
``GET /messages``
    Every accepted message: ``mail_from``, ``rcpt_tos``, ``data`` (text),
    ``connection`` (number of the SMTP connection it came on), ``tls``,
    ``login``.
``GET /stats``
    ``connections`` (opened so far), ``active``, ``peak_active``.
``POST /mode``
    ``{"rules": [rule, ...]}`` replaces the fault rules. A rule is
    ``{"stage": "ehlo"|"mail"|"rcpt"|"data"|"rset", "reply": "451 4.7.1
    Try again later", "recipients": [...], "delay_s": 0.5, "drop": true,
    "times": 1}``: at that stage (for those recipients, or all when
    omitted) wait ``delay_s``, then drop the connection without a word
    (``drop``) or answer ``reply`` (a 421 also closes the connection, as
    RFC 5321 3.8 says it should). ``times`` limits how often it fires.
``POST /reset``
    Forget messages, counters and rules.

:class:`tests.smtp_fixtures.SmtpServerProcess` starts and drives it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
STAGES = frozenset({"ehlo", "mail", "rcpt", "data", "rset"})


class ServerState:
    """What the SMTP side did, and the rules it obeys; shared across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.messages: list[dict[str, Any]] = []
            self.rules: list[dict[str, Any]] = []
            self.connections = 0
            self.active: set[int] = set()
            self.peak_active = 0

    def set_rules(self, rules: list[dict[str, Any]]) -> None:
        for rule in rules:
            if rule.get("stage") not in STAGES:
                raise ValueError(f"rule stage must be one of {sorted(STAGES)}: {rule}")
        with self._lock:
            self.rules = [dict(rule) for rule in rules]

    def opened(self) -> int:
        with self._lock:
            self.connections += 1
            self.active.add(self.connections)
            self.peak_active = max(self.peak_active, len(self.active))
            return self.connections

    def closed(self, number: int) -> None:
        with self._lock:
            self.active.discard(number)

    def record(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)

    def match(self, stage: str, recipients: list[str]) -> dict[str, Any] | None:
        """The first rule for this stage and recipients; spends one ``times``."""
        with self._lock:
            for rule in self.rules:
                wanted = rule.get("recipients")
                if rule["stage"] != stage:
                    continue
                if wanted is not None and not set(wanted) & set(recipients):
                    continue
                if rule.get("times") is not None:
                    rule["times"] -= 1
                    if rule["times"] <= 0:
                        self.rules.remove(rule)
                return dict(rule)
        return None

    def snapshot(self, what: str) -> Any:
        with self._lock:
            if what == "messages":
                return list(self.messages)
            return {
                "connections": self.connections,
                "active": len(self.active),
                "peak_active": self.peak_active,
            }


class CountingSMTP(SMTP):
    """aiosmtpd's SMTP, numbering its connection in the shared state."""

    def __init__(self, state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again after STARTTLS for the same connection (RFC 3207).
        upgrade = self._original_transport is not None
        super().connection_made(transport)
        if not upgrade:
            self.number = self.state.opened()

    def connection_lost(self, error: Exception | None) -> None:
        self.state.closed(self.number)
        super().connection_lost(error)


class FaultyHandler:
    """Accepts everything, unless a rule says otherwise."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        reply = await self._apply("ehlo", server, [])
        return [reply] if reply else responses

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return await self._apply("mail", server, []) or "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        reply = await self._apply("rcpt", server, [address])
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        return await self._apply("rset", server, []) or "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        reply = await self._apply("data", server, list(envelope.rcpt_tos))
        if reply:
            return reply
        assert isinstance(server, CountingSMTP)
        login = session.auth_data
        content = envelope.original_content or b""
        self.state.record(
            {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "data": content.decode("utf-8", "replace"),
                "connection": server.number,
                "tls": session.ssl is not None,
                "login": login.login.decode()
                if isinstance(login, LoginPassword)
                else None,
            }
        )
        return f"250 2.0.0 Ok: queued as Q{server.number}x{len(content)}"

    async def _apply(self, stage: str, server: SMTP, recipients: list[str]) -> str:
        rule = self.state.match(stage, recipients)
        if rule is None:
            return ""
        await asyncio.sleep(float(rule.get("delay_s") or 0))
        reply = str(rule.get("reply") or "")
        if rule.get("drop") or reply.startswith("421"):
            await _hang_up(server, reply)
        return reply


async def _hang_up(server: SMTP, reply: str) -> None:
    """Say ``reply`` (if any), close, and wait to be cancelled by aiosmtpd."""
    if reply:
        await server.push(reply)
    assert server.transport is not None
    server.transport.close()
    # connection_lost() cancels this session's task, and this sleep with it.
    await asyncio.sleep(3600)


class FaultyController(Controller):
    def __init__(self, state: ServerState, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state = state

    def factory(self) -> SMTP:
        return CountingSMTP(self.state, self.handler, **self.SMTP_kwargs)


def control_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Control(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, {"ok": True})
            elif self.path in ("/messages", "/stats"):
                self._answer(200, state.snapshot(self.path[1:]))
            else:
                self._answer(404, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/mode":
                    state.set_rules(list(body.get("rules", [])))
                elif self.path == "/reset":
                    state.reset()
                else:
                    return self._answer(404, {"error": f"no such path {self.path}"})
            except (ValueError, TypeError, AttributeError) as exc:
                return self._answer(400, {"error": str(exc)})
            self._answer(200, {"ok": True})

        def _answer(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep the test output quiet

    return Control


def _smtp_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"server_hostname": "smtpd.test"}
    options["enable_SMTPUTF8"] = not args.no_smtputf8
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        options["tls_context"] = context
    if args.auth:
        user, _, password = args.auth.partition(":")

        def authenticate(*auth: Any) -> AuthResult:
            data = auth[4]
            good = isinstance(data, LoginPassword) and data == (
                user.encode(),
                password.encode(),
            )
            return AuthResult(success=good, handled=False, auth_data=data)

        options["authenticator"] = authenticate
        options["auth_require_tls"] = False
    return options


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--auth", help="user:password")
    parser.add_argument("--no-smtputf8", action="store_true")
    args = parser.parse_args(argv)

    state = ServerState()
    handler = FaultyHandler(state)
    smtpd = FaultyController(
        state, handler, hostname=HOST, port=args.port, **_smtp_options(args)
    )
    smtpd.start()
    state.reset()  # forget the Controller's own readiness probe
    control = ThreadingHTTPServer((HOST, args.control_port), control_handler(state))
    # A short poll interval keeps shutdown, and so each test's teardown, quick.
    quick = {"poll_interval": 0.05}
    threading.Thread(target=control.serve_forever, kwargs=quick, daemon=True).start()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    control.shutdown()
    smtpd.stop()


if __name__ == "__main__":
    main()
