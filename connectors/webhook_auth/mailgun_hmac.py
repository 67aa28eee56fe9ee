"""Mailgun: HMAC-SHA256, hex, keyed with the HTTP webhook signing key.

The signed message is ``timestamp + token`` with no separator. Both live
in the body: in a ``signature`` object for JSON webhooks, as ordinary
form fields for legacy form and multipart posts. In legacy posts a user
variable named ``timestamp``, ``token`` or ``signature`` adds a second
value *before* Mailgun's own, so the last value is the one to check
(anymail#77). Subaccount events also carry ``parent-signature``, made
with the parent account's key; either signature may match.

The signing key is not the API key. Since the body is not signed, a
token met again with another body is refused (``tokens.TokenCache``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from connectors.bodies import load_json
from connectors.webhook_auth.checks import check_unix_stamp, first_match, utf8
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.forms import form_fields, is_form
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest
from mailyard.errors import WebhookError

SIGNATURE_FIELDS = ("timestamp", "token", "signature")
_HINT = "Mailgun puts timestamp, token and signature in every webhook body."


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    esp = request.esp
    fields = _form_signature(request) if is_form(request) else _json_signature(request)
    stamp, token = fields["timestamp"], fields["token"]

    check_unix_stamp(esp, stamp, context, "signature timestamp")

    offered = [
        utf8(fields[name].lower())
        for name in ("signature", "parent-signature")
        if name in fields
    ]
    message = utf8(stamp + token)
    expected = [
        utf8(hmac.new(utf8(key), message, hashlib.sha256).hexdigest())
        for key in config["signing_keys"]
    ]
    index = first_match(expected, offered)
    if index is not None:
        _claim(request, token, float(stamp), context)
        return Verdict(identity=f"signing_keys[{index}]")

    detail = (
        f"The signature matches none of the {len(expected)} configured signing_keys; "
        "use the HTTP webhook signing key from Mailgun's dashboard, not the API key."
    )
    raise WebhookAuthError(esp, "bad_signature", detail)


def _claim(request: WebhookRequest, token: str, stamp: float, context: Context) -> None:
    if context.tokens is None:
        return
    forget_at = stamp + context.max_age_s
    if not context.tokens.claim(token, request.body, forget_at, context.now):
        detail = (
            "This signature's token was already used with a different body; "
            "Mailgun never does that, so the body is not Mailgun's."
        )
        raise WebhookAuthError(request.esp, "replayed", detail)


def _json_signature(request: WebhookRequest) -> dict[str, str]:
    try:
        payload = load_json(request.esp, request.body)
    except WebhookError as exc:
        raise WebhookAuthError(request.esp, "malformed", f"The {exc.detail}") from None
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signature, dict):
        detail = f"The JSON body has no 'signature' object; {_HINT}"
        raise WebhookAuthError(request.esp, "missing_credentials", detail)

    fields = {}
    for name in (*SIGNATURE_FIELDS, "parent-signature"):
        value = signature.get(name)
        # The JSON timestamp is a string in Mailgun's samples, an int in its table.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            value = str(value)
        if isinstance(value, str):
            fields[name] = value
    return _complete(request, fields, "'signature' object")


def _form_signature(request: WebhookRequest) -> dict[str, str]:
    form = form_fields(request)
    fields = {
        name: form[name][-1]
        for name in (*SIGNATURE_FIELDS, "parent-signature")
        if form.get(name)
    }
    return _complete(request, fields, "form")


def _complete(
    request: WebhookRequest, fields: dict[str, str], where: str
) -> dict[str, str]:
    missing = [name for name in SIGNATURE_FIELDS if not fields.get(name)]
    if missing:
        detail = f"The {where} has no {', '.join(missing)}; {_HINT}"
        raise WebhookAuthError(request.esp, "missing_credentials", detail)
    return fields
