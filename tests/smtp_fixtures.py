"""Fixtures for tests that need a real SMTP server on 127.0.0.1.

Import the fixtures you use into a test module (or, later, conftest)::

    from tests.smtp_fixtures import smtp_server  # noqa: F401

Every fixture here depends on pytest's built-ins only, so each one can be
imported alone. Each test gets its own server process, so rules and
counters never leak from one test into the next.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NotRequired, Self, TypedDict, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailyard.outbound import Delivery
from sinks.smtp_relay import SmtpRelay

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


class FaultRule(TypedDict):
    """One rule of ``POST /mode``; see :mod:`tests.smtpd_server`."""

    stage: str
    reply: NotRequired[str]
    recipients: NotRequired[list[str]]
    delay_s: NotRequired[float]
    drop: NotRequired[bool]
    times: NotRequired[int]


def fault(stage: str, reply: str = "", **options: Any) -> FaultRule:
    """``fault("rcpt", "550 5.1.1 User unknown", recipients=[...])``."""
    return cast(FaultRule, {"stage": stage, "reply": reply, **options})


def make_delivery(number: int = 1, **fields: Any) -> Delivery:
    """A small text delivery; ``fields`` override any attribute."""
    values: dict[str, Any] = {
        "message_id": f"msg-{number}",
        "recipient": "rcpt@example.test",
        "from_addr": "Sender <sender@mailyard.test>",
        "subject": f"Message {number}",
        "text": "Hello in text",
    }
    values.update(fields)
    return Delivery(**values)


def relay_for(server: SmtpServerProcess, **options: Any) -> SmtpRelay:
    """An :class:`SmtpRelay` aimed at ``server``, with short test timeouts."""
    options.setdefault("helo_name", "client.mailyard.test")
    options.setdefault("timeout_s", 5)
    return SmtpRelay(host=server.host, port=server.port, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class SmtpServerProcess:
    """``python -m tests.smtpd_server`` as a child process, and its controls."""

    def __init__(
        self,
        *,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        auth: tuple[str, str] | None = None,
        smtputf8: bool = True,
        log_path: Path | None = None,
    ) -> None:
        self.host = HOST
        self.port = 0
        self.control_port = 0
        self._options: list[str] = []
        if tls_cert is not None and tls_key is not None:
            self._options += ["--tls-cert", str(tls_cert), "--tls-key", str(tls_key)]
        if auth is not None:
            self._options += ["--auth", f"{auth[0]}:{auth[1]}"]
        if not smtputf8:
            self._options.append("--no-smtputf8")
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 15.0) -> Self:
        """Launch on free ports and return once the server answers."""
        self.port, self.control_port = free_port(), free_port()
        command = [sys.executable, "-m", "tests.smtpd_server"]
        command += ["--port", str(self.port), "--control-port", str(self.control_port)]
        log_path = self._log_path or Path("/dev/null")
        with log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command + self._options, cwd=REPO_ROOT, stdout=log, stderr=log
            )
        self._wait_ready(timeout_s)
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def set_mode(self, *rules: FaultRule) -> None:
        """Replace the fault rules; no rules means accept everything."""
        self._call("POST", "/mode", {"rules": list(rules)})

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def messages(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/messages"))

    def stats(self) -> dict[str, int]:
        return dict(self._call("GET", "/stats"))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_ready(self, timeout_s: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"tests.smtpd_server exited with {self._process.returncode}; "
                    f"its output is in {self._log_path or 'nowhere (no log_path)'}."
                )
            try:
                self._call("GET", "/health")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"tests.smtpd_server not ready after {timeout_s} s.")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        url = f"http://{HOST}:{self.control_port}{path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)


class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, with its key."""

    def __init__(self, directory: Path) -> None:
        self.cert, self.key = directory / "cert.pem", directory / "key.pem"
        key = ec.generate_private_key(ec.SECP256R1())
        self.cert.write_bytes(
            _self_signed(key).public_bytes(serialization.Encoding.PEM)
        )
        self.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate and nothing else."""
        return ssl.create_default_context(cafile=str(self.cert))


def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtpd.test")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public), critical=False
        )
        .sign(key, hashes.SHA256())
    )


ServerFactory = Callable[..., SmtpServerProcess]


@pytest.fixture
def smtp_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Starts servers with any options; all are stopped after the test."""
    started: list[SmtpServerProcess] = []

    def start(**options: Any) -> SmtpServerProcess:
        log_path = tmp_path / f"smtpd-{len(started)}.log"
        server = SmtpServerProcess(log_path=log_path, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[SmtpServerProcess]:
    """A plain server: no TLS, no AUTH, accepts everything until told not to."""
    with SmtpServerProcess(log_path=tmp_path / "smtpd.log") as server:
        yield server


@pytest.fixture
def smtp_tls_files(tmp_path: Path) -> TlsFiles:
    """A fresh self-signed certificate; ``.client_context()`` trusts it."""
    return TlsFiles(tmp_path)


@pytest.fixture
def smtp_tls_server(tmp_path: Path) -> Iterator[tuple[SmtpServerProcess, TlsFiles]]:
    """A server offering STARTTLS with a fresh self-signed certificate."""
    files = TlsFiles(tmp_path)
    log_path = tmp_path / "smtpd.log"
    with SmtpServerProcess(
        tls_cert=files.cert, tls_key=files.key, log_path=log_path
    ) as server:
        yield server, files


@pytest.fixture
def smtp_auth_server(tmp_path: Path) -> Iterator[SmtpServerProcess]:
    """A server that takes AUTH PLAIN/LOGIN for ``relay-user`` / ``relay-pass``."""
    auth = ("relay-user", "relay-pass")
    with SmtpServerProcess(auth=auth, log_path=tmp_path / "smtpd.log") as server:
        yield server
