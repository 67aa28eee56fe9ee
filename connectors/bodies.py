"""Webhook bodies as typed records: JSON, url-encoded forms, multipart forms.

Every problem with a body becomes a :class:`~mailyard.errors.WebhookError`
whose sentence names the field and the event, so a sender's engineer can
find the offending byte.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs

from connectors.base import parse_timestamp
from mailyard.errors import WebhookError

# Surrogates are U+D800..U+DFFF, so their escapes all start with \ud or \uD.
_SURROGATE_BYTES = re.compile(rb"\\u[dD]")
_SURROGATE_TEXT = re.compile(r"\\u[dD]")


def load_json(esp: str, body: bytes | str, what: str = "body") -> Any:
    """The JSON value of a body (or of a JSON string inside one), or a
    ``WebhookError`` saying why not; ``what`` names it in the message."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise WebhookError(esp, f"{what} nests JSON too deeply to parse.") from None
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise WebhookError(esp, f"{what} is not valid JSON ({exc}).") from None

    # "\ud800" escapes decode to lone surrogates that UTF-8 (and Avro) reject.
    if _may_hold_surrogates(body):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            detail = f"{what} contains a lone UTF-16 surrogate escape."
            raise WebhookError(esp, detail) from None
    return value


def _may_hold_surrogates(body: bytes | str) -> bool:
    if isinstance(body, bytes):
        return _SURROGATE_BYTES.search(body) is not None
    return _SURROGATE_TEXT.search(body) is not None


def type_name(value: object) -> str:
    """The JSON name of a value's type, for error messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


class Record:
    """Typed, optional access to one JSON object of a webhook body.

    ``where`` names the object in messages, e.g. ``"event 3"``. Absent keys
    and ``null`` read as ``None``; a present value of the wrong type raises.
    """

    __slots__ = ("esp", "data", "_name", "_parent")

    def __init__(
        self, esp: str, data: object, where: str, parent: Record | None = None
    ) -> None:
        if not isinstance(data, dict):
            name = where if parent is None else f"{where} of {parent.where}"
            detail = f"{name} must be a JSON object, not {type_name(data)}."
            raise WebhookError(esp, detail)
        self.esp = esp
        self.data: dict[str, Any] = data
        self._name = where
        self._parent = parent

    @property
    def where(self) -> str:
        """The object's place in the body, composed only when a message needs it."""
        if self._parent is None:
            return self._name
        return f"{self._name} of {self._parent.where}"

    def _wrong(self, key: str, expected: str, value: object) -> WebhookError:
        found = type_name(value)
        detail = f"field {key!r} of {self.where} must be {expected}, not {found}."
        return WebhookError(self.esp, detail)

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or value.__class__ is str:
            return value
        raise self._wrong(key, "a string", value)

    def ident(self, key: str) -> str | None:
        """A string or an integer id, as its exact decimal text."""
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._wrong(key, "a string or an integer", value)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is None or isinstance(value, bool):
            return value
        raise self._wrong(key, "a boolean", value)

    def record(self, key: str) -> Record | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, dict):
            return Record(self.esp, value, repr(key), self)
        raise self._wrong(key, "an object", value)

    def items(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if isinstance(value, list):
            return value
        raise self._wrong(key, "an array", value)

    def strings(self, key: str) -> list[str]:
        """A string or an array of strings (tags, categories) as a list."""
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise self._wrong(key, "a string or an array of strings", value)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key)
        if value is None:
            return {}
        if isinstance(value, dict):
            return value
        raise self._wrong(key, "an object", value)

    def timestamp(self, key: str) -> datetime | None:
        try:
            return parse_timestamp(self.data.get(key))
        except ValueError as exc:
            detail = f"field {key!r} of {self.where} is not a timestamp: {exc}."
            raise WebhookError(self.esp, detail) from None


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """The lower-cased media type and its parameters from a Content-Type value."""
    head, *params = content_type.split(";")
    options: dict[str, str] = {}
    for param in params:
        name, _, value = param.partition("=")
        options[name.strip().lower()] = value.strip().strip('"')
    return head.strip().lower(), options


def parse_urlencoded(body: bytes) -> dict[str, list[str]]:
    """Form fields of an ``application/x-www-form-urlencoded`` body, all values kept."""
    text = body.decode("utf-8", "replace")
    return parse_qs(text, keep_blank_values=True)


def parse_multipart(esp: str, body: bytes, content_type: str) -> dict[str, list[str]]:
    """Text fields of a ``multipart/form-data`` body; file parts are skipped."""
    boundary = media_type(content_type)[1].get("boundary")
    if not boundary:
        detail = f"content type {content_type!r} has no multipart boundary."
        raise WebhookError(esp, detail)

    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'
    try:
        message = BytesParser().parsebytes(head.encode("utf-8", "replace") + body)
        fields = [_form_field(part) for part in message.walk()]
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        # The stdlib MIME parser is lenient but raises assorted errors on junk.
        detail = f"multipart body cannot be parsed ({exc!r})."
        raise WebhookError(esp, detail) from None
    if not message.is_multipart():
        detail = f"body has no parts delimited by boundary {boundary!r}."
        raise WebhookError(esp, detail)

    form: dict[str, list[str]] = {}
    for field in fields:
        if field is not None:
            form.setdefault(field[0], []).append(field[1])
    return form


def _form_field(part: Message) -> tuple[str, str] | None:
    # Reading parameters with our own splitter is ten times faster than
    # Message.get_param, and form-data names carry no RFC 2231 encoding.
    disposition = part.get("content-disposition")
    if not isinstance(disposition, str):
        return None
    params = media_type(disposition)[1]
    name = params.get("name")
    if name is None or "filename" in params:
        return None
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = media_type(part.get("content-type") or "")[1].get("charset", "utf-8")
    try:
        return name, payload.decode(charset, "replace")
    except LookupError:
        return name, payload.decode("utf-8", "replace")


def event_records(esp: str, body: bytes) -> list[Record]:
    """A JSON body that is one event object or an array of them, as records."""
    payload = load_json(esp, body)
    if isinstance(payload, dict):
        return [Record(esp, payload, "the body")]
    if not isinstance(payload, list):
        detail = f"body must be a JSON object or array, not {type_name(payload)}."
        raise WebhookError(esp, detail)
    return [Record(esp, item, f"event {n}") for n, item in enumerate(payload)]
