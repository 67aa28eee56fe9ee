"""Mandrill (Mailchimp Transactional): HMAC-SHA1, base64, in X-Mandrill-Signature.

The signed string is the webhook URL exactly as entered in Mandrill
(scheme, host, path, query, any ``user:pass@``), followed by every POST
field as ``key + value`` with the keys sorted and no separator. Keyed
with the webhook's own key. Behind a proxy the URL the gateway sees
differs from the public one (anymail#48): set ``url`` in the config to
the URL entered in Mandrill. Mandrill sends no timestamp.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from connectors.webhook_auth.checks import (
    first_match,
    require_header,
    utf8,
    without_userinfo,
)
from connectors.webhook_auth.errors import WebhookAuthError
from connectors.webhook_auth.forms import form_fields
from connectors.webhook_auth.model import Context, Verdict, WebhookRequest

SIGNATURE_HEADER = "x-mandrill-signature"


def signed_string(url: str, fields: Mapping[str, list[str]]) -> bytes:
    """What Mandrill signs: the URL, then each field's key and value by key."""
    parts = [url]
    for key in sorted(fields):
        parts.extend(key + value for value in fields[key])
    return utf8("".join(parts))


def verify(
    request: WebhookRequest, config: Mapping[str, Any], context: Context
) -> Verdict:
    hint = "Mandrill signs every webhook post; is this post from Mandrill?"
    signature = require_header(request, SIGNATURE_HEADER, hint)
    url = config.get("url") or request.url

    message = signed_string(url, form_fields(request))
    expected = [
        base64.b64encode(hmac.new(utf8(key), message, hashlib.sha1).digest())
        for key in config["webhook_keys"]
    ]
    index = first_match(expected, [utf8(signature.strip())])
    if index is not None:
        return Verdict(identity=f"webhook_keys[{index}]")

    shown_url = without_userinfo(url)
    detail = (
        f"The signature over {shown_url!r} and the form fields matches none of "
        f"the {len(expected)} configured webhook_keys; if the URL differs from the "
        "one entered in Mandrill (a proxy, a trailing slash), set 'url' in the config."
    )
    raise WebhookAuthError(request.esp, "bad_signature", detail)
