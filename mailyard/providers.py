"""Recipient domain to mailbox provider family, as data.

The table lists consumer domains by provider. Domains hosted on a
provider's business offering (Google Workspace, Microsoft 365) cannot be
told from the name alone; they are ``other`` until an MX lookup says more.
"""

from __future__ import annotations

_FAMILIES: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail.com", "googlemail.com"),
    "microsoft": (
        "outlook.com", "hotmail.com", "live.com", "msn.com", "hotmail.co.uk",
        "hotmail.fr", "live.co.uk", "outlook.fr", "hotmail.de", "hotmail.it",
        "windowslive.com", "passport.com",
    ),
    "yahoo": (
        "yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.fr",
        "yahoo.de", "yahoo.co.jp", "yahoo.com.br", "aol.com", "aim.com",
        "verizon.net", "att.net", "sbcglobal.net",
    ),
    "apple": ("icloud.com", "me.com", "mac.com"),
    "gmx": ("gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com"),
    "proton": ("proton.me", "protonmail.com", "pm.me"),
    "yandex": ("yandex.ru", "yandex.com", "ya.ru"),
    "mailru": ("mail.ru", "bk.ru", "list.ru", "inbox.ru"),
    "zoho": ("zoho.com", "zohomail.com"),
    "comcast": ("comcast.net",),
    "orange": ("orange.fr", "wanadoo.fr"),
    "qq": ("qq.com", "foxmail.com"),
}

DOMAIN_TO_PROVIDER: dict[str, str] = {
    domain: family for family, domains in _FAMILIES.items() for domain in domains
}


def recipient_domain(address: str | None) -> str | None:
    """The lower-cased domain of a bare address, or ``None`` if it has none."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].strip().strip(">").lower()
    return domain or None


def mailbox_provider(domain: str | None) -> str | None:
    """The provider family for a domain: ``gmail``, ``microsoft``, ... or ``other``."""
    if domain is None:
        return None
    return DOMAIN_TO_PROVIDER.get(domain, "other")
