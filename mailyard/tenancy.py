"""Subaccounts and API keys: who may call what, for which subaccount.

A subaccount is one customer of the installation: its own entry points
(``/webhooks/{esp}/{subaccount}``), keys, rule set, suppression list and
reputation. Subaccounts, keys and the installation's own webhook
credentials are records on the compacted ``mailyard.tenants`` topic:

* ``subaccount/<name>``: a :class:`Subaccount` as JSON,
* ``key/<key_id>``: an :class:`ApiKey` as JSON (the secret's hash only),
* ``installation``: webhook credentials for ``/webhooks/{esp}``,
* ``deleted/<name>``: when a subaccount was deleted (its name is not reused),

and a null value deletes. Every process reads the topic whole into a
:class:`TenantDirectory`, so the gateway and every worker authenticate
alike. Everything here is pure: publishing is the caller's business.

A key is shown once, as ``myk_<key_id>_<secret>``. Only the SHA-256 of
the secret is stored; the secret is 32 random bytes, so a plain hash
is as strong as a slow one here and costs microseconds per request.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from mailyard.errors import MailyardError

Scope = Literal["send", "events:read", "rules:manage", "suppressions:manage", "admin"]
SUBACCOUNT_SCOPES: tuple[Scope, ...] = (
    "send",
    "events:read",
    "rules:manage",
    "suppressions:manage",
)
SCOPES: tuple[Scope, ...] = (*SUBACCOUNT_SCOPES, "admin")
Status = Literal["active", "suspended"]

INSTALLATION_KEY = "installation"
KEY_PREFIX = "myk"
SUBACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_KEY_TEXT = re.compile(r"^myk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")
DEFAULT_RATE_PER_S = 50.0


class AccessError(MailyardError, PermissionError):
    """A request without a usable key (401), the scope (403) or the budget (429)."""

    def __init__(
        self, status: int, detail: str, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


def _now() -> float:
    return time.time()


@dataclasses.dataclass(frozen=True, slots=True)
class Subaccount:
    name: str
    status: Status = "active"
    # None: the Rule Engine decides; a name: every message goes there.
    pinned_destination: str | None = None
    webhook_auth: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Subaccount:
        return cls(**json.loads(raw))

    def public(self) -> dict[str, Any]:
        """The record as the API shows it: which ESPs are set up, no secrets."""
        data = dataclasses.asdict(self)
        data["webhook_auth"] = sorted(self.webhook_auth)
        return data


@dataclasses.dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    subaccount: str | None  # None: an installation (admin) key
    scopes: tuple[str, ...]
    secret_hash: str
    name: str = ""
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    rate_per_s: float = DEFAULT_RATE_PER_S

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    def usable(self, now: float) -> bool:
        if self.revoked_at is not None and self.revoked_at <= now:
            return False
        return self.expires_at is None or now < self.expires_at

    def to_json(self) -> bytes:
        return json.dumps(dataclasses.asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> ApiKey:
        data = json.loads(raw)
        data["scopes"] = tuple(data["scopes"])
        return cls(**data)

    def public(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        del data["secret_hash"]
        data["scopes"] = list(self.scopes)
        return data


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def validate_subaccount_name(name: str) -> str:
    if not SUBACCOUNT_NAME.match(name):
        raise ValueError(
            f"Subaccount name {name!r} is not 1-64 letters, digits, '.', '_' or '-' "
            "starting with a letter or digit."
        )
    return name


def validate_scopes(scopes: Iterable[str], *, admin: bool) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(scopes))
    allowed = SCOPES if admin else SUBACCOUNT_SCOPES
    unknown = [s for s in chosen if s not in allowed]
    if unknown:
        raise ValueError(
            f"Unknown scopes {unknown}; a {'admin' if admin else 'subaccount'} key "
            f"may have {', '.join(allowed)}."
        )
    if not chosen:
        raise ValueError(f"A key needs at least one scope of {', '.join(allowed)}.")
    return chosen


def new_key(
    subaccount: str | None,
    scopes: Iterable[str],
    *,
    name: str = "",
    rate_per_s: float = DEFAULT_RATE_PER_S,
    expires_at: float | None = None,
    now: float | None = None,
) -> tuple[ApiKey, str]:
    """A new key record and its text, which is shown once and never stored."""
    admin = subaccount is None
    chosen = validate_scopes(
        ("admin",) if admin and not scopes else scopes, admin=admin
    )
    if admin and "admin" not in chosen:
        chosen = ("admin", *chosen)
    if rate_per_s <= 0:
        raise ValueError(f"rate_per_s must be positive, got {rate_per_s}.")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    record = ApiKey(
        key_id=key_id,
        subaccount=subaccount,
        scopes=chosen,
        secret_hash=hash_secret(secret),
        name=name,
        created_at=_now() if now is None else now,
        expires_at=expires_at,
        rate_per_s=rate_per_s,
    )
    return record, f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_key_text(text: str) -> tuple[str, str]:
    """(key_id, secret) of a key's text; raises AccessError(401) if it is not one."""
    match = _KEY_TEXT.match(text.strip())
    if match is None:
        raise AccessError(401, "The API key is not a Mailyard key (myk_<id>_<secret>).")
    return match.group(1), match.group(2)


class TokenBucket:
    """``rate`` requests a second on average, bursts up to ``2 * rate``."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, 2 * rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0 when a request may go now, else the seconds until one may."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class TenantDirectory:
    """Subaccounts, keys and installation settings, as read from the topic.

    ``bootstrap_admin`` is the text of an admin key that exists outside
    the topic (``MAILYARD_ADMIN_KEY``), so a new installation can create
    its first subaccounts and keys.
    """

    def __init__(self, bootstrap_admin: str | None = None) -> None:
        self.subaccounts: dict[str, Subaccount] = {}
        self.keys: dict[str, ApiKey] = {}
        self.installation: dict[str, Any] = {"webhook_auth": {}}
        # Names of deleted subaccounts, which are never given out again: their
        # suppressions, counts and messages stay keyed by the name.
        self.deleted: dict[str, float] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._bootstrap: ApiKey | None = None
        if bootstrap_admin:
            key_id, secret = parse_key_text(bootstrap_admin)
            self._bootstrap = ApiKey(
                key_id,
                None,
                ("admin",),
                hash_secret(secret),
                name="MAILYARD_ADMIN_KEY",
                rate_per_s=1000.0,
            )

    # --- the topic -----------------------------------------------------------

    def apply(self, key: str, value: bytes | None) -> None:
        kind, _, ident = key.partition("/")
        if kind == "subaccount":
            if value is None:
                self.subaccounts.pop(ident, None)
            else:
                self.subaccounts[ident] = Subaccount.from_json(value)
        elif kind == "key":
            if value is None:
                self.keys.pop(ident, None)
            else:
                self.keys[ident] = ApiKey.from_json(value)
        elif kind == INSTALLATION_KEY:
            self.installation = json.loads(value) if value else {"webhook_auth": {}}
        elif kind == "deleted":
            self.deleted[ident] = float(value or 0)

    def on_record(self, record: Any) -> None:
        self.apply(record.key.decode(), record.value)

    # --- questions -----------------------------------------------------------

    def authenticate(self, text: str | None, *, now: float | None = None) -> ApiKey:
        """The key ``text`` stands for; AccessError(401) for any unusable key."""
        if not text:
            raise AccessError(
                401, "This endpoint needs an API key: 'Authorization: Bearer myk_...'."
            )
        key_id, secret = parse_key_text(text)
        record = self.keys.get(key_id)
        if record is None and self._bootstrap and key_id == self._bootstrap.key_id:
            record = self._bootstrap
        digest = hash_secret(secret)
        if record is None or not hmac.compare_digest(digest, record.secret_hash):
            raise AccessError(
                401, f"API key {key_id} is unknown or its secret is wrong."
            )
        if not record.usable(_now() if now is None else now):
            raise AccessError(401, f"API key {key_id} has expired or was revoked.")
        if record.subaccount is not None and record.subaccount not in self.subaccounts:
            raise AccessError(401, f"API key {key_id}'s subaccount no longer exists.")
        return record

    def throttle(self, key: ApiKey) -> float:
        """0 if ``key`` may make a request now, else the seconds to wait."""
        bucket = self._buckets.get(key.key_id)
        if bucket is None or bucket.rate != key.rate_per_s:
            bucket = self._buckets[key.key_id] = TokenBucket(key.rate_per_s)
        return bucket.take()

    def webhook_auth(self, esp: str, subaccount: str | None) -> dict[str, Any] | None:
        """The credentials an entry point checks ``esp``'s webhooks with."""
        found: dict[str, Any] | None
        if subaccount is None:
            found = self.installation.get("webhook_auth", {}).get(esp)
        else:
            sub = self.subaccounts.get(subaccount)
            found = None if sub is None else sub.webhook_auth.get(esp)
        return found

    def keys_of(self, subaccount: str | None) -> list[ApiKey]:
        return [k for k in self.keys.values() if k.subaccount == subaccount]


def subaccount_record(sub: Subaccount) -> tuple[bytes, bytes]:
    return f"subaccount/{sub.name}".encode(), sub.to_json()


def key_record(key: ApiKey) -> tuple[bytes, bytes]:
    return f"key/{key.key_id}".encode(), key.to_json()


def installation_record(settings: Mapping[str, Any]) -> tuple[bytes, bytes]:
    return INSTALLATION_KEY.encode(), json.dumps(dict(settings)).encode()


def bootstrap_admin_key(explicit: str | None, data_dir: Path) -> str:
    """The installation's bootstrap admin key: ``explicit``, or the one kept on disk.

    The first process of a new installation makes the key and writes it to
    ``<data_dir>/admin.key`` (readable by the owner only); every later
    process on that data folder reads it from there.
    """
    if explicit:
        parse_key_text(explicit)
        return explicit

    path = data_dir / "admin.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    text = f"{KEY_PREFIX}_{secrets.token_hex(8)}_{secrets.token_urlsafe(32)}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another process made it: wait until its write is complete.
        for _ in range(50):
            found = path.read_text().strip()
            if found:
                parse_key_text(found)
                return found
            time.sleep(0.05)
        raise AccessError(500, f"{path} is empty; delete it or set MAILYARD_ADMIN_KEY.")
    with os.fdopen(fd, "w") as out:
        out.write(text + "\n")
    return text


def sender_problem(
    directory: TenantDirectory, key: ApiKey, record: dict[str, Any]
) -> str | None:
    """Why ``key`` may not submit ``record``, or None after stamping its subaccount.

    A subaccount key sends for its own subaccount only: a message naming
    none is stamped with the key's, one naming another is refused. No key
    sends for a suspended subaccount.
    """
    named = record.get("subaccount")
    if key.subaccount is not None:
        if named is not None and named != key.subaccount:
            return (
                f"the message names subaccount {named!r}; API key {key.key_id} "
                f"sends for {key.subaccount!r} only."
            )
        record["subaccount"] = named = key.subaccount

    sub = directory.subaccounts.get(named) if named is not None else None
    if sub is not None and sub.status == "suspended":
        return f"subaccount {named!r} is suspended; it cannot send."
    return None
