"""Checks for the simple fields of a submitted message.

Each function takes the JSON value and the field's path, and returns the
clean value or raises :class:`SubmissionError` naming that path.
"""

from __future__ import annotations

import re

from connectors.submission_errors import SubmissionError

MAX_TAGS = 10
MAX_TAG_CHARS = 64
MAX_METADATA = 20
MAX_HEADERS = 100
MAX_KEY_CHARS = 128
MAX_VALUE_CHARS = 1024
MAX_LINE = 998  # RFC 5322 2.1.1: a line is at most 998 characters
STANDARD_STREAMS = ("transactional", "marketing", "notification")

SUBACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STREAM = re.compile(r"[a-z0-9_-]{1,64}")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 3.6.8: printable, no colon
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")

# What the fields or the sink's MIME builder write; a copy in ``headers``
# would contradict them.
RESERVED_HEADERS = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "mime-version"}
    | {"content-type", "content-transfer-encoding", "return-path"}
)


def unicode_text(value: str, field: str) -> str:
    """``value`` if it can be stored as UTF-8 (JSON allows lone surrogates)."""
    if _SURROGATE.search(value):
        raise SubmissionError(field, "is not valid Unicode (it has a lone surrogate).")
    return value


def tags(value: object, field: str) -> list[str]:
    """Up to :data:`MAX_TAGS` distinct short tags, in the order given."""
    if not isinstance(value, list):
        raise SubmissionError(field, "must be a list of strings.")
    if len(value) > MAX_TAGS:
        raise SubmissionError(field, f"has {len(value)} tags; the limit is {MAX_TAGS}.")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_CHARS:
            raise SubmissionError(
                f"{field}[{i}]", f"must be a string of 1-{MAX_TAG_CHARS} characters."
            )
        if _CONTROL.search(tag):
            raise SubmissionError(f"{field}[{i}]", "contains a control character.")
        unicode_text(tag, f"{field}[{i}]")
    return list(dict.fromkeys(value))


def metadata(value: object) -> dict[str, str]:
    """At most :data:`MAX_METADATA` string keys with string values."""
    if not isinstance(value, dict):
        raise SubmissionError("metadata", "must be an object of strings.")
    if len(value) > MAX_METADATA:
        raise SubmissionError(
            "metadata", f"has {len(value)} keys; the limit is {MAX_METADATA}."
        )
    for key, item in value.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
            raise SubmissionError(
                "metadata", f"key {key!r} must be 1-{MAX_KEY_CHARS} characters."
            )
        unicode_text(key, "metadata")
        if not isinstance(item, str) or len(item) > MAX_VALUE_CHARS:
            raise SubmissionError(
                f"metadata.{key}",
                f"must be a string of at most {MAX_VALUE_CHARS} characters.",
            )
        unicode_text(item, f"metadata.{key}")
    return dict(value)


def header_map(value: object) -> dict[str, str]:
    """Extra headers: valid names, single-line values, none reserved."""
    if not isinstance(value, dict):
        raise SubmissionError(
            "headers", "must be an object of header names to strings."
        )
    if len(value) > MAX_HEADERS:
        raise SubmissionError(
            "headers", f"has {len(value)} headers; the limit is {MAX_HEADERS}."
        )
    seen: set[str] = set()
    for name, item in value.items():
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise SubmissionError("headers", f"{name!r} is not a valid header name.")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith("x-mailyard-"):
            raise SubmissionError(f"headers.{name}", _reserved_reason(lower))
        if lower in seen:
            raise SubmissionError(
                f"headers.{name}", "is given twice (header names ignore case)."
            )
        seen.add(lower)
        if item is None:
            raise SubmissionError(f"headers.{name}", "must be a string.")
        header_value(item, f"headers.{name}")
    return dict(value)


def _reserved_reason(lower: str) -> str:
    if lower.startswith("x-mailyard-"):
        return "is reserved for Mailyard's own headers."
    if lower in ("from", "to", "cc", "bcc", "subject"):
        return f"is set from the '{lower}' field; give it there."
    return "is written by Mailyard when it builds the message."


def header_value(value: object, field: str) -> str | None:
    """A header value on one line, or None when not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubmissionError(field, "must be a string.")
    # A CR or LF would end this header and start one of the sender's choosing.
    if "\r" in value or "\n" in value:
        raise SubmissionError(
            field, "contains a line break; header injection is refused."
        )
    if _CONTROL.search(value.replace("\t", " ")):
        raise SubmissionError(field, "contains a control character.")
    if len(value) > MAX_LINE:
        raise SubmissionError(field, f"is longer than {MAX_LINE} characters.")
    return unicode_text(value, field)


def optional_str(value: object, field: str) -> str | None:
    """A body part: any string, or None when not given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SubmissionError(field, "must be a string.")
    return unicode_text(value, field)


def pattern(value: object, field: str, regex: re.Pattern[str]) -> str | None:
    """``value`` if it matches ``regex`` entirely, or None when not given."""
    if value is None:
        return None
    if not isinstance(value, str) or not regex.fullmatch(value):
        raise SubmissionError(field, f"{value!r} does not match {regex.pattern}.")
    return value
