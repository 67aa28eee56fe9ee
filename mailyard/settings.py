"""Process settings: one frozen object, read from the environment once.

Every setting has a default that works on a laptop: a broker on
127.0.0.1:19092 started by ``mailyard demo``, state under ``./var``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from mailyard.errors import ConfigError


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}.") from None


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    bootstrap: str = "127.0.0.1:19092"
    data_dir: Path = Path("var")
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    api_port: int = 8081
    max_body_bytes: int = 8 * 1024 * 1024
    produce_timeout_s: float = 10.0
    archive_batch_events: int = 5000
    archive_flush_s: float = 5.0
    worker_stages: tuple[str, ...] = (
        "normalize", "ledger", "route", "dispatch", "status",
    )
    rules_file: Path | None = None
    health_window_s: int = 60
    health_bucket_s: int = 10
    retry_base_s: int = 30
    retry_max_age_s: int = 72 * 3600
    smtp_port: int = 2525
    max_message_bytes: int = 10 * 1024 * 1024
    # The installation's bootstrap admin key (myk_...); when unset, one is
    # made once and kept in <data_dir>/admin.key (see mailyard.tenancy).
    admin_key: str | None = None

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        d = cls()
        settings = cls(
            bootstrap=env.get("MAILYARD_KAFKA_BOOTSTRAP", d.bootstrap),
            data_dir=Path(env.get("MAILYARD_DATA_DIR", str(d.data_dir))),
            gateway_host=env.get("MAILYARD_HOST", d.gateway_host),
            gateway_port=_int(env, "MAILYARD_GATEWAY_PORT", d.gateway_port),
            api_port=_int(env, "MAILYARD_API_PORT", d.api_port),
            max_body_bytes=_int(env, "MAILYARD_MAX_BODY_BYTES", d.max_body_bytes),
            archive_batch_events=_int(
                env, "MAILYARD_ARCHIVE_BATCH_EVENTS", d.archive_batch_events
            ),
            smtp_port=_int(env, "MAILYARD_SMTP_PORT", d.smtp_port),
            max_message_bytes=_int(
                env, "MAILYARD_MAX_MESSAGE_BYTES", d.max_message_bytes
            ),
        )
        settings = dataclasses.replace(
            settings,
            rules_file=Path(env["MAILYARD_RULES"]) if env.get("MAILYARD_RULES") else None,
            health_window_s=_int(env, "MAILYARD_HEALTH_WINDOW_S", d.health_window_s),
            health_bucket_s=_int(env, "MAILYARD_HEALTH_BUCKET_S", d.health_bucket_s),
            retry_base_s=_int(env, "MAILYARD_RETRY_BASE_S", d.retry_base_s),
            retry_max_age_s=_int(env, "MAILYARD_RETRY_MAX_AGE_S", d.retry_max_age_s),
            admin_key=env.get("MAILYARD_ADMIN_KEY") or None,
        )
        stages = env.get("MAILYARD_WORKER_STAGES")
        if stages:
            chosen = tuple(x.strip() for x in stages.split(",") if x.strip())
            unknown = set(chosen) - set(d.worker_stages)
            if unknown:
                raise ConfigError(
                    f"MAILYARD_WORKER_STAGES names unknown stages {sorted(unknown)}; "
                    f"known: {', '.join(d.worker_stages)}."
                )
            settings = dataclasses.replace(settings, worker_stages=chosen)
        if settings.max_body_bytes <= 0:
            raise ConfigError("MAILYARD_MAX_BODY_BYTES must be positive.")
        return settings
