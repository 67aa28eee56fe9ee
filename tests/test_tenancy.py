"""Subaccounts and API keys: key texts, authentication, rate limits, the CLI.

The directory and the operations on it are pure and tested in process;
``requires`` is tested through a tiny FastAPI app over httpx's ASGI
transport; the ``mailyard subaccounts`` and ``mailyard keys`` commands run
through ``mailyard.cli.main`` against the session's broker, with names of
their own, since other modules share its ``mailyard.tenants`` topic.
"""

from __future__ import annotations

import hashlib
import json
import re
import stat
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from connectors.registry import esp_names
from mailyard import tenancy, tenant_ops
from mailyard.access import install_error_handler, requires
from mailyard.cli import main
from mailyard.tenancy import (
    AccessError,
    ApiKey,
    TenantDirectory,
    TokenBucket,
    bootstrap_admin_key,
    new_key,
    parse_key_text,
)

KEY_TEXT = re.compile(r"^myk_[0-9a-f]{16}_[A-Za-z0-9_-]{20,128}$")


def apply(directory: TenantDirectory, records: list[tenant_ops.TenantRecord]) -> None:
    for key, value in records:
        directory.apply(key.decode(), value)


@pytest.fixture
def directory() -> TenantDirectory:
    """A directory with the subaccount ``acme``."""
    found = TenantDirectory()
    records, _ = tenant_ops.create_subaccount(found, "acme")
    apply(found, records)
    return found


def add_key(
    directory: TenantDirectory, subaccount: str | None = "acme", **options: Any
) -> tuple[ApiKey, str]:
    scopes = ["send"] if subaccount else ["admin"]
    records, key, text = tenant_ops.create_key(directory, subaccount, scopes, **options)
    apply(directory, records)
    return key, text


def refused(directory: TenantDirectory, text: str | None, **kw: Any) -> AccessError:
    with pytest.raises(AccessError) as caught:
        directory.authenticate(text, **kw)
    return caught.value


# --- key texts and what is stored --------------------------------------------


def test_a_key_text_is_myk_its_16_hex_id_and_a_secret() -> None:
    key, text = new_key(None, ["admin"])

    assert KEY_TEXT.match(text), text
    key_id, _secret = parse_key_text(text)
    assert key_id == key.key_id and len(key_id) == 16
    assert key.scopes == ("admin",) and key.is_admin and key.subaccount is None


def test_only_the_hash_of_the_secret_is_stored_or_shown(
    directory: TenantDirectory,
) -> None:
    key, text = add_key(directory)
    _key_id, secret = parse_key_text(text)

    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.encode() not in key.to_json()
    assert "secret_hash" not in key.public() and secret not in json.dumps(key.public())


def test_a_text_that_is_not_a_mailyard_key_is_refused_as_such() -> None:
    with pytest.raises(AccessError) as caught:
        parse_key_text("sk_live_0123456789abcdef")

    assert caught.value.status == 401 and "myk_" in caught.value.detail


def test_a_subaccount_key_may_not_have_the_admin_scope() -> None:
    with pytest.raises(ValueError, match="subaccount key"):
        new_key("acme", ["send", "admin"])


# --- authenticate ------------------------------------------------------------


def test_a_key_authenticates_as_itself(directory: TenantDirectory) -> None:
    key, text = add_key(directory)

    assert directory.authenticate(text) == key


def test_no_key_is_401(directory: TenantDirectory) -> None:
    assert refused(directory, None).status == 401
    assert refused(directory, "").status == 401


def test_an_unknown_key_id_is_401(directory: TenantDirectory) -> None:
    _other, text = new_key("acme", ["send"])  # never added to the directory

    error = refused(directory, text)

    assert error.status == 401 and "unknown" in error.detail


def test_a_wrong_secret_is_401(directory: TenantDirectory) -> None:
    key, _text = add_key(directory)
    _, wrong = new_key("acme", ["send"])
    forged = f"myk_{key.key_id}_{parse_key_text(wrong)[1]}"

    error = refused(directory, forged)

    assert error.status == 401 and key.key_id in error.detail


def test_an_expired_key_is_401(directory: TenantDirectory) -> None:
    now = time.time()
    _key, text = add_key(directory, expires_at=now + 10)

    assert directory.authenticate(text, now=now + 9)
    assert refused(directory, text, now=now + 10).status == 401


def test_a_revoked_key_is_401(directory: TenantDirectory) -> None:
    key, text = add_key(directory)
    records, revoked = tenant_ops.revoke_key(directory, key.key_id)
    apply(directory, records)

    error = refused(directory, text)

    assert revoked.revoked_at is not None
    assert error.status == 401 and "revoked" in error.detail


def test_the_keys_of_a_deleted_subaccount_are_401(directory: TenantDirectory) -> None:
    _key, text = add_key(directory)

    apply(directory, tenant_ops.delete_subaccount(directory, "acme"))

    assert refused(directory, text).status == 401
    assert directory.keys_of("acme") == []


def test_a_deleted_subaccounts_name_is_not_given_out_again(
    directory: TenantDirectory,
) -> None:
    apply(directory, tenant_ops.delete_subaccount(directory, "acme"))

    with pytest.raises(tenant_ops.TenantConflict, match="was deleted"):
        tenant_ops.create_subaccount(directory, "acme")
    assert "acme" not in directory.subaccounts


def test_a_key_whose_subaccount_record_is_gone_is_401(
    directory: TenantDirectory,
) -> None:
    _key, text = add_key(directory)

    directory.apply("subaccount/acme", None)  # a tombstone read before the keys'

    error = refused(directory, text)
    assert error.status == 401 and "no longer exists" in error.detail


def test_the_bootstrap_admin_key_authenticates_without_a_record() -> None:
    _key, text = new_key(None, ["admin"])
    directory = TenantDirectory(text)

    key = directory.authenticate(text)

    assert key.is_admin and directory.keys == {}


# --- rotation ----------------------------------------------------------------


def test_a_rotated_key_works_until_the_overlap_ends_and_the_new_one_after(
    directory: TenantDirectory,
) -> None:
    old, old_text = add_key(directory, name="billing")
    records, new, new_text = tenant_ops.rotate_key(directory, old.key_id, overlap_s=60)
    apply(directory, records)
    now = time.time()

    assert directory.authenticate(old_text, now=now).key_id == old.key_id
    assert directory.authenticate(new_text, now=now).key_id == new.key_id
    assert refused(directory, old_text, now=now + 61).status == 401
    assert directory.authenticate(new_text, now=now + 61).key_id == new.key_id
    assert (new.subaccount, new.scopes, new.name) == ("acme", old.scopes, "billing")


def test_a_revoked_key_cannot_be_revoked_again(directory: TenantDirectory) -> None:
    key, _text = add_key(directory)
    apply(directory, tenant_ops.revoke_key(directory, key.key_id)[0])
    first = directory.keys[key.key_id].revoked_at

    with pytest.raises(tenant_ops.TenantConflict, match="revoked already"):
        tenant_ops.revoke_key(directory, key.key_id)
    assert directory.keys[key.key_id].revoked_at == first


def test_a_revoked_key_cannot_be_rotated(directory: TenantDirectory) -> None:
    key, _text = add_key(directory)
    apply(directory, tenant_ops.revoke_key(directory, key.key_id)[0])

    with pytest.raises(tenant_ops.TenantConflict):
        tenant_ops.rotate_key(directory, key.key_id)


# --- operations --------------------------------------------------------------


def test_a_subaccount_name_is_taken_once(directory: TenantDirectory) -> None:
    with pytest.raises(tenant_ops.TenantConflict):
        tenant_ops.create_subaccount(directory, "acme")
    with pytest.raises(ValueError, match="Subaccount name"):
        tenant_ops.create_subaccount(directory, "bad name")


def test_a_key_for_an_unknown_subaccount_is_not_made(
    directory: TenantDirectory,
) -> None:
    with pytest.raises(tenant_ops.TenantNotFound):
        tenant_ops.create_key(directory, "nobody", ["send"])


def test_webhook_credentials_merge_per_esp_and_none_removes_one(
    directory: TenantDirectory,
) -> None:
    first = {"sendgrid": {"none": True}, "mailgun": {"none": True}}
    apply(
        directory,
        tenant_ops.update_subaccount(directory, "acme", webhook_auth=first)[0],
    )

    records, sub = tenant_ops.update_subaccount(
        directory, "acme", webhook_auth={"mailgun": None}
    )
    apply(directory, records)

    assert sub.webhook_auth == {"sendgrid": {"none": True}}
    assert directory.webhook_auth("sendgrid", "acme") == {"none": True}
    assert directory.webhook_auth("mailgun", "acme") is None
    assert sub.public()["webhook_auth"] == ["sendgrid"]


def test_installation_webhook_credentials_accumulate_per_esp() -> None:
    directory = TenantDirectory()
    for esp in ("sendgrid", "postmark"):
        apply(
            directory,
            tenant_ops.set_installation_webhook_auth(directory, esp, {"none": True}),
        )

    assert directory.webhook_auth("sendgrid", None) == {"none": True}
    assert directory.webhook_auth("postmark", None) == {"none": True}
    assert directory.webhook_auth("mailgun", None) is None


# --- requires(): 401, 403 and 429 over HTTP ----------------------------------


@pytest.fixture
async def tiny(directory: TenantDirectory) -> AsyncIterator[httpx.AsyncClient]:
    """An app with one endpoint that needs the ``events:read`` scope."""
    app = FastAPI()
    install_error_handler(app)

    @app.get("/read", dependencies=[Depends(requires(directory, "events:read"))])
    async def read() -> dict[str, bool]:
        return {"ok": True}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tiny") as c:
        yield c


def bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


async def test_a_request_without_a_key_is_401_with_a_challenge(
    tiny: httpx.AsyncClient,
) -> None:
    reply = await tiny.get("/read")

    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "myk_" in reply.json()["error"]


async def test_a_key_without_the_scope_is_403(
    tiny: httpx.AsyncClient, directory: TenantDirectory
) -> None:
    _key, text = add_key(directory)  # "send" only

    reply = await tiny.get("/read", headers=bearer(text))

    assert reply.status_code == 403 and "events:read" in reply.json()["error"]


async def test_a_key_over_its_rate_is_429_with_retry_after(
    tiny: httpx.AsyncClient, directory: TenantDirectory
) -> None:
    records, _key, text = tenant_ops.create_key(
        directory, "acme", ["events:read"], rate_per_s=1.0
    )
    apply(directory, records)

    # A burst of up to twice the rate passes; the next request waits.
    replies = [await tiny.get("/read", headers=bearer(text)) for _ in range(3)]

    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[2].headers["retry-after"] == "1"
    assert "1 requests/s" in replies[2].json()["error"]


def test_a_token_bucket_refills_at_its_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    fake_time = SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    monkeypatch.setattr(tenancy, "time", fake_time)
    bucket = TokenBucket(10.0)

    waits = [bucket.take() for _ in range(21)]
    clock[0] += 0.1

    assert waits[:20] == [0.0] * 20
    assert waits[20] == pytest.approx(0.1)
    assert bucket.take() == 0.0 and bucket.take() > 0


# --- the bootstrap admin key -------------------------------------------------


def test_the_bootstrap_admin_key_is_made_once_and_kept_for_the_owner(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"

    first = bootstrap_admin_key(None, data)
    second = bootstrap_admin_key(None, data)

    path = data / "admin.key"
    assert first == second == path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KEY_TEXT.match(first)
    assert TenantDirectory(first).authenticate(first).is_admin


def test_an_explicit_admin_key_wins_and_writes_no_file(tmp_path: Path) -> None:
    _key, text = new_key(None, ["admin"])

    assert bootstrap_admin_key(text, tmp_path) == text
    assert not (tmp_path / "admin.key").exists()
    with pytest.raises(AccessError):
        bootstrap_admin_key("not-a-key", tmp_path)


# --- the CLI against the broker ----------------------------------------------


@pytest.fixture
def cli(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """``cli("keys", "list")``: the exit code and the JSON the command printed."""
    monkeypatch.setenv("MAILYARD_KAFKA_BOOTSTRAP", kafka_bootstrap)
    monkeypatch.setenv("MAILYARD_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MAILYARD_ADMIN_KEY", raising=False)

    def run(*argv: str) -> tuple[int, Any]:
        code = main(list(argv))
        out = capsys.readouterr().out
        return code, json.loads(out) if out.strip().startswith(("{", "[")) else out

    return run


def names(listed: list[dict[str, Any]]) -> set[str]:
    return {s["name"] for s in listed}


def test_subaccounts_are_created_listed_suspended_and_deleted(
    cli: Any, kafka_bootstrap: str
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"

    _, created = cli("subaccounts", "create", name, "--pin", "primary")
    listed = cli("subaccounts", "list")[1]
    suspended = cli("subaccounts", "suspend", name)[1]
    resumed = cli("subaccounts", "resume", name)[1]
    deleted = cli("subaccounts", "delete", name)

    assert created["status"] == "active" and name in names(listed)
    mine = next(s for s in listed if s["name"] == name)
    assert mine["pinned_destination"] == "primary" and mine["webhook_auth"] == []
    assert suspended["status"] == "suspended" and resumed["status"] == "active"
    assert deleted == (0, {"deleted": name})
    assert name not in names(cli("subaccounts", "list")[1])
    assert name not in tenant_ops.load_directory(kafka_bootstrap).subaccounts


def test_a_second_subaccount_of_the_same_name_is_refused(
    cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cli("subaccounts", "create", name)

    code = main(["subaccounts", "create", name])

    assert code == 2 and "exists already" in capsys.readouterr().err


def test_keys_are_created_rotated_and_revoked(cli: Any, kafka_bootstrap: str) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cli("subaccounts", "create", name)

    code, made = cli(
        "keys",
        "create",
        "--subaccount",
        name,
        "--scopes",
        "send,events:read",
        "--label",
        "app",
        "--rate",
        "5",
    )
    _, rotated = cli("keys", "rotate", made["key_id"], "--overlap", "60")
    now = time.time()
    after_rotation = tenant_ops.load_directory(kafka_bootstrap)
    _, revoked = cli("keys", "revoke", rotated["key_id"])
    after_revocation = tenant_ops.load_directory(kafka_bootstrap)

    assert code == 0 and KEY_TEXT.match(made["key"])
    assert (made["subaccount"], made["scopes"], made["rate_per_s"]) == (
        name,
        ["send", "events:read"],
        5.0,
    )
    assert "secret_hash" not in made
    assert rotated["replaces"] == made["key_id"] and rotated["key"] != made["key"]
    assert after_rotation.authenticate(made["key"], now=now).key_id == made["key_id"]
    assert after_rotation.authenticate(rotated["key"], now=now).subaccount == name
    retiring = after_rotation.keys[made["key_id"]]
    assert retiring.expires_at == pytest.approx(now + 60, abs=5)
    with pytest.raises(AccessError):
        after_rotation.authenticate(made["key"], now=now + 61)
    assert revoked["revoked_at"] is not None
    with pytest.raises(AccessError):
        after_revocation.authenticate(rotated["key"])
    listed = cli("keys", "list", "--subaccount", name)[1]
    assert {k["key_id"] for k in listed} == {made["key_id"], rotated["key_id"]}


def test_an_admin_key_is_created_without_a_subaccount(
    cli: Any, kafka_bootstrap: str
) -> None:
    _, made = cli("keys", "create", "--label", "ops")

    found = tenant_ops.load_directory(kafka_bootstrap).authenticate(made["key"])

    assert made["subaccount"] is None and made["scopes"] == ["admin"]
    assert found.is_admin


def test_admin_key_prints_the_key_kept_in_the_data_dir(
    cli: Any, tmp_path: Path
) -> None:
    code, printed = cli("admin-key")

    assert code == 0
    assert printed.strip() == (tmp_path / "admin.key").read_text().strip()


def test_webhook_auth_all_sets_every_esp_of_a_subaccount_and_a_bad_config_is_refused(
    cli: Any, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    cli("subaccounts", "create", name)

    code, result = cli("webhook-auth", "all", '{"none": true}', "--subaccount", name)
    refused = main(
        ["webhook-auth", "mailgun", '{"signing_keys": "x"}', "--subaccount", name]
    )

    assert code == 0 and result["configured"] is True
    stored = tenant_ops.load_directory(kafka_bootstrap).subaccounts[name]
    assert set(stored.webhook_auth) == set(esp_names())
    assert refused == 2 and "signing_keys" in capsys.readouterr().err
