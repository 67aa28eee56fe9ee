"""Raw MIME as a sender submitted it: checked, its addresses and headers read.

The header block is split into fields here, byte for byte, so the message
Mailyard stores differs from the submitted one only by the removal of our
own ``X-Mailyard-*`` control fields (read into ``control``); every other
byte, and so any DKIM signature, is kept. The structure is then checked
with :mod:`email.parser` (``policy=default``): a message whose header
block does not end, or whose multipart boundaries are broken, is refused.
"""

from __future__ import annotations

import dataclasses
import re
from email import policy
from email.errors import MessageDefect
from email.header import decode_header, make_header
from email.parser import BytesParser

from connectors.submission_addresses import addr_spec
from connectors.submission_errors import SubmissionError

CONTROL_PREFIX = "x-mailyard-"
MAX_KEPT_HEADERS = 100

_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:")  # RFC 5322 2.2 field name, colon
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_ADDRESS_HEADERS = {"to": "To", "cc": "Cc", "bcc": "Bcc"}


@dataclasses.dataclass(frozen=True, slots=True)
class ParsedRaw:
    """What a raw message says; ``raw`` has its control fields removed.

    Addresses are read only on request, so an SMTP message whose envelope
    decides its recipients is not refused for an odd ``To`` header.
    """

    raw: bytes
    headers: dict[str, str]
    control: dict[str, str]
    subject: str | None
    fields: list[tuple[str, str]]

    def sender(self) -> str | None:
        """The bare address in the From header, or None without one."""
        return _sender(self.fields)

    def recipients(self) -> dict[str, list[str]]:
        """Bare addresses of the To, Cc and Bcc headers."""
        return {k: _addresses(self.fields, n) for k, n in _ADDRESS_HEADERS.items()}


def parse_raw(raw: bytes) -> ParsedRaw:
    """Read a submitted RFC 5322 message, or raise a SubmissionError."""
    head, rest = _split(raw)
    fields = _fields(head)
    kept = [f for f in fields if not f[0].lower().startswith(CONTROL_PREFIX)]
    stored = b"".join(line for _, line in kept) + rest
    _check_structure(stored)

    values = [(name, _unfold(line, name)) for name, line in fields]
    headers: dict[str, str] = {}
    control: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in values:
        lower = name.lower()
        if lower.startswith(CONTROL_PREFIX):
            control.setdefault(lower, value)
        elif len(headers) < MAX_KEPT_HEADERS and lower not in seen:
            seen.add(lower)
            headers[name] = value

    return ParsedRaw(
        raw=stored,
        headers=headers,
        control=control,
        subject=next((v for n, v in values if n.lower() == "subject"), None),
        fields=values,
    )


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """``(header block, separator and body)``; a message may have no body."""
    end = _HEAD_END.search(raw)
    if end is None:
        return raw, b""
    cut = end.start() + (2 if raw[end.start() : end.start() + 2] == b"\r\n" else 1)
    return raw[:cut], raw[cut:]


def _fields(head: bytes) -> list[tuple[str, bytes]]:
    """Each header field as ``(name, its raw lines)``, continuations folded in."""
    fields: list[tuple[str, bytes]] = []
    for number, line in enumerate(head.splitlines(keepends=True), start=1):
        if line[:1] in (b" ", b"\t") and fields:
            name, lines = fields[-1]
            fields[-1] = (name, lines + line)
            continue
        match = _FIELD.match(line)
        if match is None:
            shown = line.rstrip(b"\r\n")[:60].decode("utf-8", "replace")
            raise SubmissionError(
                "raw",
                f"line {number} of the header block is not a header field "
                f"({shown!r}); a blank line must separate the headers from the body.",
            )
        fields.append((match[1].decode("ascii"), line))
    if not fields:
        raise SubmissionError("raw", "the MIME message has no header fields.")
    return fields


def _check_structure(stored: bytes) -> None:
    try:
        message = BytesParser(policy=policy.default).parsebytes(stored)
        defects: list[MessageDefect] = [
            d for part in message.walk() for d in part.defects
        ]
    # The stdlib parser is lenient but has raised IndexError, TypeError and
    # HeaderParseError on malformed input; all mean "not parseable".
    except Exception as exc:  # noqa: BLE001
        raise SubmissionError("raw", f"cannot be parsed as MIME ({exc!r}).") from None
    if defects:
        kind = type(defects[0]).__name__
        raise SubmissionError("raw", f"is not well-formed MIME ({kind}).")


def _unfold(line: bytes, name: str) -> str:
    """The field's value, unfolded (RFC 5322 2.2.3) and RFC 2047 decoded."""
    value = line.split(b":", 1)[1].decode("utf-8", "replace")
    value = re.sub(r"\r?\n(?=[ \t])", "", value).strip()
    if "=?" not in value or name.lower() in ("from", "to", "cc", "bcc"):
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError):
        return value


def _sender(values: list[tuple[str, str]]) -> str | None:
    found = [v for n, v in values if n.lower() == "from"]
    if not found:
        return None
    tokens = address_tokens(found[0])
    if len(found) > 1 or len(tokens) != 1:
        raise SubmissionError("raw.From", "must hold exactly one address.")
    return addr_spec(tokens[0], "raw.From")[0]


def _addresses(values: list[tuple[str, str]], header: str) -> list[str]:
    tokens = [
        t for n, v in values if n.lower() == header.lower() for t in address_tokens(v)
    ]
    return [addr_spec(t, f"raw.{header}[{i}]")[0] for i, t in enumerate(tokens)]


def address_tokens(value: str) -> list[str]:
    """Split an address-list header at its commas (RFC 5322 3.4).

    Commas inside quotes or angle brackets do not split; comments are
    dropped; a group's name (``team: a@x, b@y;``) is dropped, its members
    kept, so ``undisclosed-recipients:;`` holds no address.
    """
    tokens: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = comment = 0
    for ch in value:
        if comment:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                comment += {"(": 1, ")": -1}.get(ch, 0)
            continue
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in "<>":
            angle += 1 if ch == "<" else -1
        elif not quoted and not angle and ch == "(":
            comment = 1
            continue
        elif not quoted and not angle and ch in ",;:":
            if ch != ":":
                tokens.append("".join(current))
            current = []
            continue
        current.append(ch)
    tokens.append("".join(current))
    return [t.strip() for t in tokens if t.strip()]
