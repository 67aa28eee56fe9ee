"""Check an AWS Signature Version 4 by signing the request again with botocore.

The stand-in knows the secret of each access key it accepts, rebuilds the
request from the headers the client says it signed, and compares
signatures. The refusals use the error types AWS answers with.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS refuses requests whose X-Amz-Date is more than 15 minutes off.
MAX_SKEW = timedelta(minutes=15)
MISMATCH = (
    "The request signature we calculated does not match the signature you "
    "provided. Check your AWS Secret Access Key and signing method. Consult "
    "the service documentation for details."
)
_AUTHORIZATION = re.compile(
    rf"{ALGORITHM} Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)


class SignatureRefused(Exception):
    """Why AWS would refuse the request: its error type and message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message


def verify(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Mapping[str, str],
    region: str,
    service: str,
) -> str:
    """The access key id of a correctly signed request; raises otherwise.

    ``headers`` must be keyed in lower case.
    """
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureRefused(
            "MissingAuthenticationTokenException", "Missing Authentication Token"
        )
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise SignatureRefused(
            "IncompleteSignatureException",
            f"Authorization header requires 'Credential', 'Signature' and "
            f"'SignedHeaders' parameters with {ALGORITHM}.",
        )

    key_id, date = _check_scope(match["credential"], secrets, region, service)
    amz_date = _check_date(headers.get("x-amz-date"), date)
    signed = match["signed"].split(";")
    if "host" not in signed or any(name not in headers for name in signed):
        raise SignatureRefused("SignatureDoesNotMatch", MISMATCH)

    request = AWSRequest(
        method=method, url=url, data=body, headers={n: headers[n] for n in signed}
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(key_id, secrets[key_id]), service, region)
    string_to_sign = signer.string_to_sign(request, signer.canonical_request(request))
    expected = signer.signature(string_to_sign, request)
    if not hmac.compare_digest(expected, match["signature"]):
        raise SignatureRefused("SignatureDoesNotMatch", MISMATCH)
    return key_id


def _check_scope(
    credential: str, secrets: Mapping[str, str], region: str, service: str
) -> tuple[str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureRefused(
            "IncompleteSignatureException",
            f"Credential must be <key>/<date>/<region>/<service>/aws4_request, "
            f"not {credential}.",
        )
    key_id, date, scope_region, scope_service, _ = parts
    if key_id not in secrets:
        raise SignatureRefused(
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if scope_region != region:
        raise SignatureRefused(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to a valid region, not '{scope_region}'.",
        )
    if scope_service != service:
        raise SignatureRefused(
            "SignatureDoesNotMatch",
            f"Credential should be scoped to correct service: '{service}'.",
        )
    return key_id, date


def _check_date(amz_date: str | None, scope_date: str) -> str:
    if not amz_date:
        raise SignatureRefused(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' "
            "or a 'Date' header.",
        )
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise SignatureRefused("IncompleteSignatureException", MISMATCH) from None

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    if abs(now - when) > MAX_SKEW:
        raise SignatureRefused(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is more than 15 minutes from now.",
        )
    if scope_date != amz_date[:8]:
        raise SignatureRefused("SignatureDoesNotMatch", MISMATCH)
    return amz_date
