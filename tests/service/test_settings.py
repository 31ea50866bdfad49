"""Settings: derived URLs, the production guard, loopback-only control, secrets hidden."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from quoter.errors import ConfigError
from quoter.service.environment import (
    ENDPOINTS,
    Settings,
    add_settings_arguments,
    load_or_create_token,
    read_token,
    settings_from_args,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("QUOTER_"):
            monkeypatch.delenv(name)


def test_defaults_are_demo_shadow_with_demo_urls() -> None:
    s = Settings()
    assert (s.env, s.mode) == ("demo", "shadow")
    assert s.rest_base_url == "https://external-api.demo.kalshi.co/trade-api/v2"
    assert s.ws_url == "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"
    assert not s.sends_orders
    assert not s.is_production


def test_lean_http_is_on_by_default_and_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().lean_http is True
    monkeypatch.setenv("QUOTER_LEAN_HTTP", "false")
    assert Settings().lean_http is False


def test_paper_mode_uses_the_simulator() -> None:
    s = Settings(mode="paper", sim_url="http://127.0.0.1:9999/")
    assert s.rest_base_url == "http://127.0.0.1:9999/trade-api/v2"
    assert s.ws_url == "ws://127.0.0.1:9999/trade-api/ws/v2"
    assert s.sends_orders


def test_explicit_urls_override_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTER_REST_BASE_URL", "https://demo-api.kalshi.co/trade-api/v2/")
    s = Settings()
    assert s.rest_base_url == "https://demo-api.kalshi.co/trade-api/v2"
    assert s.ws_url == ENDPOINTS["demo"][1]


def test_prod_from_env_alone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUOTER_ENV", "prod")
    # The confirmation is ignored when it comes from the environment.
    monkeypatch.setenv("QUOTER_I_UNDERSTAND_THIS_IS_PRODUCTION", "true")
    with pytest.raises(ValidationError, match="needs the explicit --i-understand"):
        Settings()


def test_prod_with_explicit_confirmation() -> None:
    s = Settings(env="prod", mode="live", i_understand_this_is_production=True)
    assert s.rest_base_url == "https://external-api.kalshi.com/trade-api/v2"
    assert s.ws_url == "wss://external-api-ws.kalshi.com/trade-api/ws/v2"
    assert s.is_production


def test_confirmation_without_prod_is_refused() -> None:
    with pytest.raises(ValidationError, match="not 'prod'"):
        Settings(i_understand_this_is_production=True)


def test_live_prod_requires_tls() -> None:
    with pytest.raises(ValidationError, match="TLS"):
        Settings(
            env="prod",
            mode="live",
            i_understand_this_is_production=True,
            rest_base_url="http://example.invalid/trade-api/v2",
        )


def test_control_host_must_be_loopback() -> None:
    assert Settings(control_host="::1").control_host == "::1"
    with pytest.raises(ValidationError, match="loopback"):
        Settings(control_host="0.0.0.0")


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(nonsense=1)  # type: ignore[call-arg]


def test_repr_hides_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("QUOTER_API_KEY_ID", "a952bcbe-ec3b-4b5b-b8f9-11dae589608c")
    monkeypatch.setenv("QUOTER_CONTROL_TOKEN", "tok-super-secret")
    monkeypatch.setenv("QUOTER_PRIVATE_KEY_PATH", str(tmp_path / "kalshi-key.pem"))
    s = Settings()
    assert s.api_key_id == "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
    assert s.control_token is not None
    assert s.control_token.get_secret_value() == "tok-super-secret"
    for text in (repr(s), str(s)):
        assert "a952bcbe" not in text
        assert "tok-super-secret" not in text
        assert "kalshi-key.pem" not in text


def test_validation_errors_do_not_echo_inputs() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(control_port="secret-looking-value")  # type: ignore[arg-type]
    assert "secret-looking-value" not in str(info.value)


def test_token_file_created_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "control.token"
    token = load_or_create_token(path)
    assert len(token.get_secret_value()) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path).get_secret_value() == token.get_secret_value()
    assert read_token(path).get_secret_value() == token.get_secret_value()
    s = Settings(control_token_file=path)
    assert s.resolve_control_token().get_secret_value() == token.get_secret_value()
    assert Settings(control_token=SecretStr("x")).resolve_control_token().get_secret_value() == "x"


def test_token_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.token"
    path.write_text("abc\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_token(path)


def test_missing_token_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_token(tmp_path / "nope")


def test_cli_flags() -> None:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    args = parser.parse_args(["--env", "prod", "--mode", "live"])
    with pytest.raises(ConfigError, match="i-understand-this-is-production"):
        settings_from_args(args)
    args = parser.parse_args(
        ["--env", "prod", "--mode", "shadow", "--i-understand-this-is-production",
         "--control-port", "0"]
    )
    s = settings_from_args(args)
    assert (s.env, s.mode, s.control_port) == ("prod", "shadow", 0)
    assert settings_from_args(parser.parse_args([])).env == "demo"


# --- item 4: production is decided by the hosts used, not by the label ------------------------


@pytest.mark.parametrize(("variable", "url", "mode"), [
    ("QUOTER_REST_BASE_URL", "https://external-api.kalshi.com/trade-api/v2", "live"),
    ("QUOTER_WS_URL", "wss://external-api-ws.kalshi.com/trade-api/ws/v2", "live"),
    ("QUOTER_REST_BASE_URL", "https://api.elections.KALSHI.com./trade-api/v2", "shadow"),
    ("QUOTER_SIM_URL", "https://external-api.kalshi.com", "paper"),
])
def test_a_production_host_under_env_demo_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str, mode: str
) -> None:
    monkeypatch.setenv(variable, url)
    with pytest.raises(ValidationError, match="point at the production host"):
        Settings(env="demo", mode=mode)  # type: ignore[arg-type]


def test_plain_http_to_the_production_host_is_refused_in_every_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUOTER_REST_BASE_URL", "http://external-api.kalshi.com/trade-api/v2")
    for mode in ("shadow", "live"):
        with pytest.raises(ValidationError, match="production host must use TLS"):
            Settings(env="prod", mode=mode, i_understand_this_is_production=True)  # type: ignore[arg-type]


def test_a_production_host_with_env_prod_and_the_flag_is_production() -> None:
    s = Settings(env="prod", mode="paper", i_understand_this_is_production=True,
                 sim_url="https://external-api.kalshi.com")
    assert s.is_production
    # Look-alike hosts are not production; loopback and demo never are.
    for url in ("https://notkalshi.com/x", "https://kalshi.com.evil.test/x",
                "https://external-api.demo.kalshi.co/trade-api/v2"):
        assert not Settings(rest_base_url=url).is_production


def test_store_synchronous_defaults_to_normal_and_refuses_other_levels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().store_synchronous == "NORMAL"
    monkeypatch.setenv("QUOTER_STORE_SYNCHRONOUS", "FULL")
    assert Settings().store_synchronous == "FULL"
    with pytest.raises(ValidationError):
        Settings(store_synchronous="OFF")  # type: ignore[arg-type]
