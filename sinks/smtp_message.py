"""The bytes an SMTP sink sends for one :class:`~mailyard.outbound.Delivery`.

A delivery either carries ``raw_mime``, sent as is, or parts (subject,
text, html, headers) that become an RFC 5322 message here. Either way the
copy carries :data:`~mailyard.outbound.MESSAGE_ID_HEADER` and a
``Message-ID``.
"""

from __future__ import annotations

import email.policy
import email.utils
import re
from email.message import EmailMessage

from mailyard.errors import MailyardError
from mailyard.outbound import MESSAGE_ID_HEADER, Delivery

# 7bit transfer encodings, so the copy passes relays without 8BITMIME
# (RFC 6152) unchanged; lines folded and ended with CRLF (RFC 5322 2.1).
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
# RFC 6532: with SMTPUTF8, headers carry UTF-8 addresses as they are.
_POLICY_UTF8 = _POLICY.clone(utf8=True)

# Headers the builder writes itself; a delivery's own copies are ignored.
_BUILT = frozenset({"from", "to", "subject", "date", "mime-version"})
_BUILT |= {"content-type", "content-transfer-encoding", MESSAGE_ID_HEADER.lower()}

# RFC 5322 3.6.8: a field name is printable ASCII other than the colon.
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:", re.MULTILINE)
_FIELD_NAME = re.compile(r"[!-9;-~]+")


class MessageBuildError(MailyardError, ValueError):
    """The delivery cannot become a valid message; the text says why."""


def envelope_address(value: str) -> str:
    """The bare address of ``"Name <a@b>"`` or ``"a@b"``, for MAIL / RCPT."""
    _name, address = email.utils.parseaddr(value)
    if not address or "@" not in address:
        raise MessageBuildError(f"{value!r} is not an email address.")
    return address


def message_bytes(delivery: Delivery) -> bytes:
    """The message to hand to DATA, with our identification headers."""
    if delivery.raw_mime is not None:
        return _stamp_raw(delivery.raw_mime, delivery)
    ascii_only = delivery.from_addr.isascii() and delivery.recipient.isascii()
    return _build(delivery).as_bytes(policy=_POLICY if ascii_only else _POLICY_UTF8)


def _build(delivery: Delivery) -> EmailMessage:
    _check_header_values(delivery)
    message = EmailMessage(policy=_POLICY)

    message["From"] = delivery.from_addr
    message["To"] = delivery.recipient
    if delivery.subject is not None:
        message["Subject"] = delivery.subject
    message["Date"] = email.utils.formatdate(usegmt=True)
    message[MESSAGE_ID_HEADER] = delivery.message_id
    for name, value in delivery.headers.items():
        if name.lower() not in _BUILT:
            message[name] = value
    if "Message-ID" not in message:
        message["Message-ID"] = _new_message_id(delivery)

    # RFC 2046 5.1.4: the richest alternative comes last.
    if delivery.text is not None:
        message.set_content(delivery.text)
        if delivery.html is not None:
            message.add_alternative(delivery.html, subtype="html")
    elif delivery.html is not None:
        message.set_content(delivery.html, subtype="html")
    else:
        message.set_content("")
    return message


def _check_header_values(delivery: Delivery) -> None:
    # A CR or LF in a value would start a header of the caller's choosing.
    named = {"From": delivery.from_addr, "To": delivery.recipient}
    named.update({"Subject": delivery.subject or "", **delivery.headers})
    for name, value in named.items():
        if not _FIELD_NAME.fullmatch(name):
            raise MessageBuildError(f"{name!r} is not a valid header name.")
        if "\r" in value or "\n" in value:
            raise MessageBuildError(f"Header {name!r} contains a line break.")


def _new_message_id(delivery: Delivery) -> str:
    _name, address = email.utils.parseaddr(delivery.from_addr)
    domain = address.rpartition("@")[2] or "mailyard.invalid"
    return email.utils.make_msgid(domain=domain)


def _stamp_raw(raw: bytes, delivery: Delivery) -> bytes:
    """Prepend our headers and leave every other byte alone.

    Prepending keeps existing DKIM signatures valid: they cover named
    headers and the body, and neither changes. A stale copy of our own
    header is dropped so the message carries exactly one.
    """
    head, separator, body = _split_head(raw)
    head = _drop_header(head, MESSAGE_ID_HEADER.encode("ascii"))
    names = {name.lower() for name in _HEADER_NAME.findall(head)}

    stamp = f"{MESSAGE_ID_HEADER}: {delivery.message_id}\r\n".encode()
    if b"message-id" not in names:
        stamp += f"Message-ID: {_new_message_id(delivery)}\r\n".encode()
    return stamp + head + separator + body


def _split_head(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Header lines (each with its line end), the empty line, the body."""
    match = re.search(rb"(\r?\n)(\r?\n)", raw)
    if match is None:
        return raw, b"", b""
    return raw[: match.end(1)], match.group(2), raw[match.end() :]


def _drop_header(head: bytes, name: bytes) -> bytes:
    # A header runs until the next line that does not start with
    # whitespace (RFC 5322 2.2.3 folding).
    kept: list[bytes] = []
    dropping = False
    for line in head.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            dropping = line.lower().startswith(name.lower() + b":")
        if not dropping:
            kept.append(line)
    return b"".join(kept)
