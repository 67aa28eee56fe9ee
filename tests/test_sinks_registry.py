"""Building ESP sinks from destination configs, secrets read from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from mailyard.errors import ConfigError
from sinks.amazon_ses import AmazonSesSink
from sinks.registry import SINKS, build_esp_sink
from tests.sink_cases import CASES, Served, make_delivery, serve
from tests.standins import amazon_ses, mailgun, postmark, sendgrid, sparkpost

# Per provider: the credentials section, the environment it reads, options.
CONFIGS: dict[str, tuple[dict[str, str], dict[str, str], dict[str, Any]]] = {
    "sendgrid": ({"api_key": "SG_KEY"}, {"SG_KEY": sendgrid.API_KEY}, {}),
    "mailgun": (
        {"api_key": "MG_KEY"},
        {"MG_KEY": mailgun.API_KEY},
        {"domain": mailgun.DOMAIN},
    ),
    "sparkpost": ({"api_key": "SP_KEY"}, {"SP_KEY": sparkpost.API_KEY}, {}),
    "amazon_ses": (
        {"access_key_id": "SES_ID", "secret_access_key": "SES_SECRET"},
        {
            "SES_ID": amazon_ses.ACCESS_KEY_ID,
            "SES_SECRET": amazon_ses.SECRET_ACCESS_KEY,
        },
        {"region": amazon_ses.REGION},
    ),
    "postmark": ({"server_token": "PM_TOKEN"}, {"PM_TOKEN": postmark.SERVER_TOKEN}, {}),
}


def config_for(which: str, **overrides: Any) -> dict[str, Any]:
    credentials, _, options = CONFIGS[which]
    config = {
        "name": f"{which}-main",
        "kind": "esp_http",
        "provider": which,
        "credentials": credentials,
        **options,
    }
    config.update(overrides)
    return config


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def running(request: pytest.FixtureRequest) -> Iterator[Served]:
    yield from serve(request.param)


async def test_a_sink_built_from_config_sends_with_the_env_secrets(
    running: Served,
) -> None:
    provider = running.case.name
    config = config_for(provider, base_url=running.url, max_concurrency="3")

    sink = build_esp_sink(config, environ=CONFIGS[provider][1])
    result = await sink.send(make_delivery())
    await sink.aclose()

    assert type(sink) is SINKS[provider]
    assert result.outcome == "accepted", result.detail


def test_every_provider_with_a_standin_has_a_sink() -> None:
    assert set(SINKS) == {case.name for case in CASES} == set(CONFIGS)


def test_a_missing_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="SG_KEY .*is not set"):
        build_esp_sink(config_for("sendgrid"), environ={})


def test_a_secret_pasted_into_the_config_is_refused() -> None:
    config = config_for("sendgrid", credentials={"api_key": "SG.abc.def-ghi"})

    with pytest.raises(ConfigError, match="secrets do not belong in the config"):
        build_esp_sink(config, environ={"SG.abc.def-ghi": "x"})


def test_an_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="known providers are: amazon_ses, mailgun"):
        build_esp_sink(config_for("sendgrid", provider="mailchimp"), environ={})


def test_another_kind_of_destination_is_refused() -> None:
    with pytest.raises(ConfigError, match="kind is 'smtp'"):
        build_esp_sink(config_for("sendgrid", kind="smtp"), environ={})


def test_an_unknown_credential_is_refused() -> None:
    config = config_for("postmark", credentials={"account_token": "PM_ACCOUNT"})

    with pytest.raises(ConfigError, match=r"unknown credentials \['account_token'\]"):
        build_esp_sink(config, environ={"PM_ACCOUNT": "x"})


def test_a_missing_required_credential_is_named() -> None:
    config = config_for("amazon_ses", credentials={"access_key_id": "SES_ID"})

    with pytest.raises(ConfigError, match=r"\['secret_access_key'\] are missing"):
        build_esp_sink(config, environ=CONFIGS["amazon_ses"][1])


def test_ses_without_a_region_is_a_config_error() -> None:
    config = config_for("amazon_ses")
    del config["region"]

    with pytest.raises(ConfigError, match="region"):
        build_esp_sink(config, environ=CONFIGS["amazon_ses"][1])


def test_a_limit_that_is_not_a_number_is_refused() -> None:
    config = config_for("sendgrid", timeout_s="soon")

    with pytest.raises(ConfigError, match="timeout_s must be a number"):
        build_esp_sink(config, environ=CONFIGS["sendgrid"][1])


def test_a_non_positive_timeout_is_refused() -> None:
    config = config_for("sendgrid", timeout_s=0)

    with pytest.raises(ConfigError, match="timeout_s must be positive"):
        build_esp_sink(config, environ=CONFIGS["sendgrid"][1])


def test_ses_options_and_the_session_token_are_passed_on() -> None:
    credentials = {**CONFIGS["amazon_ses"][0], "session_token": "SES_TOKEN"}
    environ = {**CONFIGS["amazon_ses"][1], "SES_TOKEN": "token"}
    config = config_for(
        "amazon_ses",
        credentials=credentials,
        configuration_set="tx",
        region="us-west-2",
    )

    sink = build_esp_sink(config, environ=environ)

    assert isinstance(sink, AmazonSesSink)
    assert (sink.region, sink.configuration_set) == ("us-west-2", "tx")
    assert sink.base_url == "https://email.us-west-2.amazonaws.com"
