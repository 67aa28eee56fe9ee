"""Email addresses as a submission gives them: checked, reduced to addr-spec.

An address is ``local@domain`` or ``Display Name <local@domain>`` (RFC 5322
3.4). The local part is a dot-atom or a quoted string, and may hold UTF-8
(RFC 6531); the domain is a host name of two or more labels, checked in its
IDNA form. Domain literals (``[192.0.2.1]``) and obsolete syntax are not
accepted: no relay Mailyard hands mail to would deliver them.
"""

from __future__ import annotations

import re
from email.headerregistry import Address

from connectors.submission_errors import SubmissionError
from connectors.submission_fields import unicode_text

MAX_RECIPIENTS = 1000
MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3 path limit, less the angle brackets
MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]"
_LOCAL = re.compile(rf'{_ATEXT}+(?:\.{_ATEXT}+)*|"(?:[^"\\\x00-\x1f]|\\[ -~])*"')
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_NAMED = re.compile(r"(?P<name>[^<>]*?)\s*<(?P<addr>[^<>]*)>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def addr_spec(value: object, field: str) -> tuple[str, str]:
    """``(bare address, header form)`` of one address, or a SubmissionError."""
    if not isinstance(value, str):
        raise SubmissionError(field, "must be an email address as a string.")
    text = unicode_text(value, field).strip()
    if _CONTROL.search(text):
        raise SubmissionError(field, f"{value!r} contains a line break or control.")

    name = ""
    named = _NAMED.fullmatch(text)
    if named is not None:
        name, text = _display_name(named["name"]), named["addr"].strip()
    why = address_problem(text)
    if why is not None:
        raise SubmissionError(field, f"{value!r} is not a valid email address ({why}).")

    local, _, domain = text.rpartition("@")
    header = str(Address(display_name=name, username=local, domain=domain))
    return text, header if name else text


def address_problem(address: str) -> str | None:
    """Why ``address`` is not a bare deliverable address, or None if it is."""
    if "@" not in address:
        return "it has no @"
    local, _, domain = address.rpartition("@")
    if len(address) > MAX_ADDRESS:
        return f"it is longer than {MAX_ADDRESS} characters"
    if not local or len(local.encode()) > MAX_LOCAL or not _LOCAL.fullmatch(local):
        return "the part before the @ is not a valid mailbox name"
    if not domain:
        return "the domain after the @ is missing"
    if not _HOST.fullmatch(_ace(domain)):
        return f"{domain!r} is not a valid domain name"
    return None


def recipient_list(value: object, field: str) -> list[str]:
    """Bare addresses of a list of addresses, or of a single address string."""
    if isinstance(value, str):
        return [addr_spec(value, field)[0]]
    if not isinstance(value, list):
        raise SubmissionError(field, "must be an address or a list of addresses.")
    if len(value) > MAX_RECIPIENTS:
        raise SubmissionError(
            field, f"has {len(value)} addresses; the limit is {MAX_RECIPIENTS}."
        )
    return [addr_spec(item, f"{field}[{i}]")[0] for i, item in enumerate(value)]


def check_unique(lists: dict[str, list[str]]) -> None:
    """At least one recipient, at most :data:`MAX_RECIPIENTS`, none twice."""
    total = sum(len(addresses) for addresses in lists.values())
    if total == 0:
        raise SubmissionError("to", "a message needs a recipient in to, cc or bcc.")
    if total > MAX_RECIPIENTS:
        raise SubmissionError(
            "to",
            f"to, cc and bcc hold {total} recipients; the limit is {MAX_RECIPIENTS}.",
        )

    # The Rule Engine decides once per recipient: a repeat would send twice.
    seen: dict[str, str] = {}
    for field, addresses in lists.items():
        for i, address in enumerate(addresses):
            first = seen.setdefault(address.lower(), f"{field}[{i}]")
            if first != f"{field}[{i}]":
                raise SubmissionError(
                    f"{field}[{i}]", f"{address!r} is already a recipient ({first})."
                )


def _display_name(raw: str) -> str:
    name = raw.strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name


def _ace(domain: str) -> str:
    """The ASCII (IDNA) form of a domain, or "" when it has none."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return ""
