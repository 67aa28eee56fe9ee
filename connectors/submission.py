"""Submitted messages: a sender's JSON (or an SMTP DATA) into a record.

The record is the ``SubmittedMessage`` of ``schemas/submitted_message.avsc``.
Validation is pure and precise: every refusal is a :class:`SubmissionError`
naming the field (``to[2]``, ``messages[3].headers``) and saying, in a
sentence, what to change. A message carries either parts (``text`` and/or
``html``, built into MIME by the sink) or ``raw`` / ``raw_base64`` MIME,
sent as is.

Headers given beside parts may not repeat what the fields say or what the
sink builds (:data:`RESERVED_HEADERS`); ``Message-ID``, ``Reply-To``,
``List-Unsubscribe`` and other headers are passed through. Headers named
``X-Mailyard-*`` are ours: refused beside parts and removed from raw MIME,
so a sender can neither forge a message id nor leak control headers to
recipients. Recipients are stored as bare addresses; the ``From`` header
keeps its display name in ``headers``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.submission_addresses import addr_spec, check_unique, recipient_list
from connectors.submission_errors import SubmissionError, SubmissionTooLarge
from connectors.submission_fields import (
    RESERVED_HEADERS,
    STREAM,
    SUBACCOUNT,
    header_map,
    header_value,
    metadata,
    optional_str,
    pattern,
    tags,
    unicode_text,
)
from connectors.submission_mime import ParsedRaw, parse_raw
from mailyard.outbound import MESSAGE_ID_HEADER

__all__ = [
    "MAX_BATCH",
    "RESERVED_HEADERS",
    "Submission",
    "SubmissionError",
    "SubmissionTooLarge",
    "parse_submission",
    "smtp_record",
    "submission_record",
]

Source = Literal["api", "smtp"]

MAX_BATCH = 500
_FIELDS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "text", "html", "raw", "raw_base64"}
    | {"headers", "subaccount", "stream", "tags", "metadata"}
)


@dataclasses.dataclass(frozen=True, slots=True)
class Submission:
    """The records of one request; ``batch`` says which reply shape it wants."""

    records: list[dict[str, Any]]
    batch: bool


def parse_submission(payload: object, *, max_bytes: int) -> Submission:
    """One message (a JSON object) or a batch (a list, or ``{"messages"}``)."""
    if isinstance(payload, dict) and "messages" in payload:
        extra = sorted(set(payload) - {"messages"})
        if extra:
            raise SubmissionError(
                "messages", f"a batch has only a 'messages' list, not {extra[0]!r}."
            )
        payload = payload["messages"]
        if not isinstance(payload, list):
            raise SubmissionError("messages", "must be a list of messages.")
    if not isinstance(payload, list):
        return Submission([submission_record(payload, max_bytes=max_bytes)], False)

    if not payload:
        raise SubmissionError("messages", "a batch needs at least one message.")
    if len(payload) > MAX_BATCH:
        raise SubmissionError(
            "messages", f"has {len(payload)} messages; the limit is {MAX_BATCH}."
        )
    records = []
    for index, item in enumerate(payload):
        try:
            records.append(submission_record(item, max_bytes=max_bytes))
        except SubmissionError as exc:
            raise exc.within(f"messages[{index}]") from None
    return Submission(records, True)


def submission_record(
    message: object, *, max_bytes: int, source: Source = "api"
) -> dict[str, Any]:
    """The ``SubmittedMessage`` record for one JSON message object."""
    if not isinstance(message, dict):
        raise SubmissionError("message", "must be a JSON object.")
    unknown = sorted(str(k) for k in set(message) - _FIELDS)
    if unknown:
        field = unknown[0] if unknown[0].isidentifier() else "message"
        raise SubmissionError(
            field, f"{unknown[0]!r} is not a field; known: {_known()}."
        )

    record = _options(message, source)
    raw = _raw_bytes(message)
    if raw is None:
        record.update(_parts(message, max_bytes))
    else:
        record.update(_from_raw(message, raw, max_bytes))
    _finish(record)
    return record


def _options(message: dict[str, Any], source: Source) -> dict[str, Any]:
    return {
        "message_id": uuid.uuid4().hex,
        "subaccount": pattern(message.get("subaccount"), "subaccount", SUBACCOUNT),
        "stream": pattern(message.get("stream"), "stream", STREAM),
        "tags": tags(message.get("tags", []), "tags"),
        "metadata": metadata(message.get("metadata", {})),
        "submitted_at": datetime.now(UTC),
        "source": source,
    }


def _parts(message: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    text = optional_str(message.get("text"), "text")
    html = optional_str(message.get("html"), "html")
    if text is None and html is None:
        raise SubmissionError("text", "a message needs text, html, raw or raw_base64.")
    subject = header_value(message.get("subject"), "subject")
    if "from" not in message:
        raise SubmissionError("from", "is required.")
    sender, from_header = addr_spec(message["from"], "from")

    headers = header_map(message.get("headers", {}))
    headers["From"] = from_header
    size = sum(len(s.encode()) for s in (text or "", html or "", subject or ""))
    size += sum(len(k) + len(v.encode()) for k, v in headers.items())
    _check_size(size, max_bytes)
    return {
        "from_addr": sender,
        **{key: recipient_list(message.get(key, []), key) for key in _RECIPIENTS},
        "subject": subject,
        "headers": headers,
        "text": text,
        "html": html,
        "raw_mime": None,
        "size_bytes": size,
    }


def _from_raw(message: dict[str, Any], raw: bytes, max_bytes: int) -> dict[str, Any]:
    for name in ("text", "html", "headers"):
        if name in message:
            raise SubmissionError(
                name, "cannot be given beside raw MIME; put it inside."
            )
    _check_size(len(raw), max_bytes)
    return _raw_parts(message, parse_raw(raw))


def _raw_parts(message: dict[str, Any], parsed: ParsedRaw) -> dict[str, Any]:
    """Fields the sender gave win; the rest are read from the MIME headers."""
    if "from" in message:
        sender = addr_spec(message["from"], "from")[0]
    else:
        found = parsed.sender()
        if found is None:
            raise SubmissionError("from", "is required when the raw MIME has no From.")
        sender = found
    if any(key in message for key in _RECIPIENTS):
        lists = {key: recipient_list(message.get(key, []), key) for key in _RECIPIENTS}
    else:
        lists = parsed.recipients()
    subject = parsed.subject
    if "subject" in message:
        subject = header_value(message["subject"], "subject")
    return {
        "from_addr": sender,
        **lists,
        "subject": subject,
        "headers": dict(parsed.headers),
        "text": None,
        "html": None,
        "raw_mime": parsed.raw,
        "size_bytes": len(parsed.raw),
    }


def smtp_record(
    raw: bytes, *, mail_from: str, rcpt_tos: list[str], max_bytes: int
) -> dict[str, Any]:
    """The record for an SMTP DATA: the envelope decides who receives it.

    MAIL FROM and RCPT TO become ``from_addr`` and ``to`` (Bcc recipients
    appear only there); the headers are kept as written. ``X-Mailyard-
    Subaccount``, ``-Stream`` and ``-Tags`` (comma-separated) set those
    fields and are removed from the stored message.
    """
    _check_size(len(raw), max_bytes)
    parsed = parse_raw(raw)
    fields = {"from": mail_from, "to": rcpt_tos, **_control_fields(parsed.control)}

    record = _options(fields, "smtp")
    record.update(_raw_parts(fields, parsed))
    _finish(record)
    return record


def _control_fields(control: dict[str, str]) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for header, key in (("subaccount", SUBACCOUNT), ("stream", STREAM)):
        name = f"X-Mailyard-{header.title()}"
        value = control.get(name.lower())
        if value is not None:
            fields[header] = pattern(value, name, key)
    listed = control.get("x-mailyard-tags")
    if listed is not None:
        values = [t.strip() for t in listed.split(",") if t.strip()]
        fields["tags"] = tags(values, "X-Mailyard-Tags")
    return fields


_RECIPIENTS = ("to", "cc", "bcc")


def _finish(record: dict[str, Any]) -> None:
    check_unique({key: record[key] for key in _RECIPIENTS})
    record["headers"][MESSAGE_ID_HEADER] = record["message_id"]


def _raw_bytes(message: dict[str, Any]) -> bytes | None:
    if "raw" in message and "raw_base64" in message:
        raise SubmissionError("raw_base64", "give raw or raw_base64, not both.")
    if "raw" in message or "raw_base64" in message:
        for name in ("text", "html"):
            if name in message:
                raise SubmissionError(name, "give text/html or raw MIME, not both.")
    if "raw" in message:
        raw = message["raw"]
        if not isinstance(raw, str) or not raw:
            raise SubmissionError("raw", "must be the MIME message as a string.")
        return unicode_text(raw, "raw").encode("utf-8")
    if "raw_base64" in message:
        encoded = message["raw_base64"]
        if not isinstance(encoded, str) or not encoded:
            raise SubmissionError("raw_base64", "must be a base64 string.")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SubmissionError(
                "raw_base64", f"is not valid base64 ({exc})."
            ) from None
    return None


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise SubmissionTooLarge(size, limit)


def _known() -> str:
    return ", ".join(sorted(_FIELDS))
