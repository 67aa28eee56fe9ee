"""``mailyard subaccounts``, ``mailyard keys``, ``mailyard webhook-auth``, ``mailyard admin-key``.

These commands read and write ``mailyard.tenants`` on the broker directly,
so whoever may reach the broker may run them; the REST API
(``/v1/subaccounts``, ``/v1/keys``) does the same behind an admin key.
Results are printed as JSON; a new key's text is shown once, here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from mailyard import tenant_ops
from mailyard.settings import Settings
from mailyard.tenancy import (
    SUBACCOUNT_SCOPES,
    Status,
    bootstrap_admin_key,
    validate_subaccount_name,
)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def _subaccounts(args: argparse.Namespace, settings: Settings) -> int:
    if args.name is not None:
        validate_subaccount_name(args.name)
    directory = tenant_ops.load_directory(settings.bootstrap)
    if args.action == "list":
        _print([s.public() for _, s in sorted(directory.subaccounts.items())])
        return 0
    if args.name is None:
        print(f"mailyard subaccounts {args.action}: a NAME is needed.", file=sys.stderr)
        return 2

    if args.action == "create":
        records, sub = tenant_ops.create_subaccount(
            directory, args.name, pinned_destination=args.pin
        )
    elif args.action == "delete":
        records, sub = tenant_ops.delete_subaccount(directory, args.name), None
    else:
        status: Status = "suspended" if args.action == "suspend" else "active"
        records, sub = tenant_ops.update_subaccount(directory, args.name, status=status)
    tenant_ops.publish_sync(settings.bootstrap, records)
    _print(sub.public() if sub else {"deleted": args.name})
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    directory = tenant_ops.load_directory(settings.bootstrap)
    if args.action == "list":
        _print(
            [
                k.public()
                for k in directory.keys.values()
                if args.subaccount is None or k.subaccount == args.subaccount
            ]
        )
        return 0

    if args.action != "create" and args.key_id is None:
        print(f"mailyard keys {args.action}: a KEY_ID is needed.", file=sys.stderr)
        return 2

    if args.action == "create":
        scopes = (
            args.scopes.split(",")
            if args.scopes
            else ([] if args.subaccount is None else list(SUBACCOUNT_SCOPES))
        )
        records, key, text = tenant_ops.create_key(
            directory,
            args.subaccount,
            scopes,
            name=args.label or "",
            rate_per_s=args.rate,
        )
        result = {**key.public(), "key": text}
    elif args.action == "rotate":
        records, key, text = tenant_ops.rotate_key(
            directory, args.key_id, overlap_s=args.overlap
        )
        result = {**key.public(), "key": text, "replaces": args.key_id}
    else:
        records, key = tenant_ops.revoke_key(directory, args.key_id)
        result = key.public()
    tenant_ops.publish_sync(settings.bootstrap, records)
    _print(result)
    return 0


def _webhook_auth(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.registry import esp_names
    from connectors.webhook_auth import validate_config

    esps = esp_names() if args.esp == "all" else [args.esp]
    try:
        config = None if args.config == "none-configured" else json.loads(args.config)
    except ValueError as exc:
        raise ValueError(f"the config argument is not JSON ({exc}).") from None
    checked = {
        esp: None if config is None else validate_config(esp, config) for esp in esps
    }
    directory = tenant_ops.load_directory(settings.bootstrap)
    if args.subaccount is None:
        records: list[tenant_ops.TenantRecord] = []
        for esp, entry in checked.items():
            records = tenant_ops.set_installation_webhook_auth(directory, esp, entry)
            directory.apply(records[0][0].decode(), records[0][1])
    else:
        records, _ = tenant_ops.update_subaccount(
            directory, args.subaccount, webhook_auth=dict(checked)
        )
    tenant_ops.publish_sync(settings.bootstrap, records)
    _print(
        {"esps": esps, "subaccount": args.subaccount, "configured": config is not None}
    )
    return 0


def _admin_key(_args: argparse.Namespace, settings: Settings) -> int:
    print(bootstrap_admin_key(settings.admin_key, settings.data_dir))
    return 0


def _reported(command: Callable[[argparse.Namespace, Settings], int]) -> Any:
    """Refusals (a bad name, an unknown key) as one line on stderr and exit 2."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return command(args, settings)
        except (ValueError, LookupError) as exc:
            print(f"mailyard {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def add_parsers(sub: Any) -> None:
    subs = sub.add_parser(
        "subaccounts", help="create, list, suspend or delete subaccounts"
    )
    subs.add_argument(
        "action", choices=["create", "list", "suspend", "resume", "delete"]
    )
    subs.add_argument("name", nargs="?")
    subs.add_argument("--pin", help="send all its mail through this destination")
    subs.set_defaults(func=_reported(_subaccounts))

    keys = sub.add_parser("keys", help="create, list, rotate or revoke API keys")
    keys.add_argument("action", choices=["create", "list", "rotate", "revoke"])
    keys.add_argument("key_id", nargs="?", help="the key to rotate or revoke")
    keys.add_argument("--subaccount", help="omit for an admin key")
    keys.add_argument(
        "--scopes", help=f"comma-separated: {', '.join(SUBACCOUNT_SCOPES)}"
    )
    keys.add_argument("--label", help="a name to recognise the key by")
    keys.add_argument("--rate", type=float, default=None, help="requests per second")
    keys.add_argument(
        "--overlap",
        type=float,
        default=3600.0,
        help="seconds the old key still works after a rotation",
    )
    keys.set_defaults(func=_reported(_keys))

    auth = sub.add_parser("webhook-auth", help="set how an ESP's webhooks are verified")
    auth.add_argument("esp", help="an ESP name, or all")
    auth.add_argument(
        "config",
        help='JSON, e.g. \'{"signing_keys": ["..."]}\', or none-configured to remove',
    )
    auth.add_argument("--subaccount", help="omit for /webhooks/{esp} itself")
    auth.set_defaults(func=_reported(_webhook_auth))

    sub.add_parser(
        "admin-key", help="print the installation's bootstrap admin key"
    ).set_defaults(func=_admin_key)
