"""Editing the strategy file while the service runs: the next quote uses the new config."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from e2e_helpers import CONFIG_YAML, T1, T2, bot_quotes, running_service, sim_env, until


async def test_edited_config_prices_the_next_rfq(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            first = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, first)), what="the first quote")
            [q1] = bot_quotes(env.exchange, first)
            assert (q1.yes_bid_micros, q1.no_bid_micros) == (480_000, 480_000)

            old = svc.config
            env.config_path.write_text(CONFIG_YAML.replace(f'{T2}: "0.50"', f'{T2}: "0.60"'))
            await until(lambda: svc.config is not old, what="the reload")
            new = svc.config
            second = env.rfq(T2)
            await until(lambda: bool(bot_quotes(env.exchange, second)), what="the second quote")
            [q2] = bot_quotes(env.exchange, second)
            assert (q2.yes_bid_micros, q2.no_bid_micros) == (580_000, 380_000)

            # A broken edit is rejected and the running config kept.
            with structlog.testing.capture_logs() as logs:
                env.config_path.write_text("version: 1\nstrategies: [}\n")
                await until(lambda: any(e["event"] == "config_reload_rejected" for e in logs),
                            what="the rejection")
            [rejected] = [e for e in logs if e["event"] == "config_reload_rejected"]
            assert rejected["path"] == str(env.config_path)
            await asyncio.sleep(0.3)  # another poll: still the good config
            assert svc.config is new
            assert not svc.runtime.halted


async def test_bad_config_text_keeps_the_running_config(tmp_path: Path) -> None:
    bad_texts = [
        CONFIG_YAML.encode().replace(b"name: e2e", b"name: e2\xffe"),
        CONFIG_YAML.replace("name: e2e", "name: [x]").encode(),
        b"version: 1\nstrategies: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    ]
    async with sim_env(tmp_path) as env:
        svc = env.service()
        async with running_service(svc):
            first = env.rfq(T1)
            await until(lambda: bool(bot_quotes(env.exchange, first)), what="the first quote")
            good = svc.config
            for i, raw in enumerate(bad_texts, start=1):
                with structlog.testing.capture_logs() as logs:
                    env.config_path.write_bytes(raw)
                    await until(lambda: any(e["event"] == "config_reload_rejected"
                                            for e in logs), what=f"rejection {i}")
                [rejected] = [e for e in logs if e["event"] == "config_reload_rejected"]
                assert rejected["why"].startswith(f"{env.config_path}:")
                assert svc.config is good
                assert svc.fatal is None
            # Still quoting with the old config.
            second = env.rfq(T2)
            await until(lambda: bool(bot_quotes(env.exchange, second)), what="the second quote")
            assert not svc.runtime.halted
