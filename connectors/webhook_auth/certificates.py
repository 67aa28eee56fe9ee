"""Amazon SNS signing certificates, fetched only from SNS hosts and cached.

A message names the certificate that verifies it, so the URL is the
attack surface: it must be https on ``sns.<region>.amazonaws.com`` (or
``.amazonaws.com.cn``) with a path ending ``.pem`` before anything is
fetched. A loose pattern such as "any amazonaws.com host" would accept a
certificate an attacker put in an S3 bucket (``sns.s3.amazonaws.com`` is
a bucket name), so the region label is matched strictly. Tests and local
demos pass their own host pattern and schemes.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from typing import Literal
from urllib.parse import SplitResult, urlsplit

import httpx
from cryptography import x509

from mailyard.errors import MailyardError

Fetch = Callable[[str], bytes]

# Region labels look like us-east-1, eu-central-2, us-gov-west-1, cn-north-1.
SNS_HOST = re.compile(
    r"sns\.(?P<region>[a-z]{2}(?:-gov)?-[a-z]+-[0-9]{1,2})\.amazonaws\.com(?:\.cn)?"
)
FETCH_TIMEOUT_S = 5.0
MAX_CERTIFICATE_BYTES = 64 * 1024
# Printable ASCII without spaces: urlsplit silently drops tabs and newlines,
# so a URL holding them would be checked as one string and fetched as another.
_URL_CHARS = re.compile(r"[!-~]+")


class CertificateError(MailyardError):
    """A certificate URL is not trusted, or its certificate cannot be had.

    ``reason`` is ``"bad_certificate_url"`` or ``"certificate_unavailable"``.
    """

    def __init__(
        self,
        reason: Literal["bad_certificate_url", "certificate_unavailable"],
        detail: str,
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def fetch_with_httpx(url: str) -> bytes:
    """GET ``url`` with a short timeout and no redirects."""
    response = httpx.get(url, timeout=FETCH_TIMEOUT_S, follow_redirects=False)
    response.raise_for_status()
    content: bytes = response.content
    if len(content) > MAX_CERTIFICATE_BYTES:
        raise OSError(f"the response is larger than {MAX_CERTIFICATE_BYTES} bytes")
    return content


class CertificateStore:
    """Checks SNS URLs and keeps each fetched certificate by URL.

    ``fetch`` returns the bytes at a URL and raises ``httpx.HTTPError`` or
    ``OSError`` when it cannot. ``host_pattern`` must match the whole
    ``host[:port]`` of a URL; a named group ``region`` lets callers check
    a URL's region against a topic's. Thread-safe.
    """

    def __init__(
        self,
        fetch: Fetch | None = None,
        *,
        host_pattern: str | re.Pattern[str] = SNS_HOST,
        schemes: Collection[str] = ("https",),
        max_entries: int = 64,
    ) -> None:
        self._fetch = fetch or fetch_with_httpx
        self._host = re.compile(host_pattern)
        self._schemes = frozenset(schemes)
        self._max_entries = max_entries
        self._cache: OrderedDict[str, x509.Certificate] = OrderedDict()
        self._lock = threading.Lock()

    def check_url(self, url: str, what: str, *, certificate: bool) -> str | None:
        """Raise unless ``url`` is on an allowed host; return its region, if known.

        A ``certificate`` URL must also have a ``.pem`` path and no query.
        """
        parts = _split(url)
        host = self._host.fullmatch(parts.netloc.lower()) if parts else None
        if parts is None or parts.scheme not in self._schemes or host is None:
            detail = (
                f"The {what} {url[:80]!r} is not on an allowed SNS host and scheme."
            )
            raise CertificateError("bad_certificate_url", detail)
        if parts.fragment or (
            certificate and (parts.query or not parts.path.endswith(".pem"))
        ):
            detail = f"The {what} {url[:80]!r} is not the path of a .pem certificate."
            raise CertificateError("bad_certificate_url", detail)
        return host.groupdict().get("region")

    def certificate(self, url: str) -> x509.Certificate:
        """The certificate at ``url``: checked, fetched once, then cached."""
        self.check_url(url, "SigningCertURL", certificate=True)
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                self._cache.move_to_end(url)
                return cached

        loaded = self._load(url)
        with self._lock:
            self._cache[url] = loaded
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return loaded

    def _load(self, url: str) -> x509.Certificate:
        try:
            data = self._fetch(url)
        except (httpx.HTTPError, OSError) as exc:
            detail = f"The signing certificate at {url!r} could not be fetched ({exc})."
            raise CertificateError("certificate_unavailable", detail) from exc
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            detail = f"The document at {url!r} is not a PEM certificate ({exc})."
            raise CertificateError("certificate_unavailable", detail) from exc


def _split(url: str) -> SplitResult | None:
    if not _URL_CHARS.fullmatch(url):
        return None
    try:
        return urlsplit(url)
    except ValueError:
        return None
