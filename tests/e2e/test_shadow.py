"""Shadow mode against the simulator: nothing is sent, and every would-be price is visible."""

from __future__ import annotations

from pathlib import Path

from e2e_helpers import T1, T2, bot_quotes, running_service, sim_env, until
from rich.console import Console

from quoter.service.live_view import ActivityPrinter, render
from quoter.service.store import Store

QUOTE_POSTS = ("POST", "/trade-api/v2/communications/quotes")


async def test_shadow_mode_shows_the_bids_fair_value_and_edge(tmp_path: Path) -> None:
    async with sim_env(tmp_path) as env:
        base = env.sim.base_url
        settings = env.settings(
            mode="shadow", rest_base_url=f"{base}/trade-api/v2",
            ws_url="ws" + base.removeprefix("http") + "/trade-api/ws/v2",
        )
        svc = env.service(settings)
        async with running_service(svc):
            rfqs = [env.rfq(T1), env.rfq(T2)]
            await until(lambda: svc.hooks.counts.get("shadow_quoted", 0) == 2,
                        what="two shadow quotes")
            snap = svc.snapshot()
            status = svc.status()
        # Nothing left for the exchange.
        assert env.faults.count(*QUOTE_POSTS) == 0
        assert all(bot_quotes(env.exchange, r) == [] for r in rfqs)
        # Counted as shadow_quoted, not quoted; no "rejected/shadow" noise.
        assert snap.counts["quoted"] == 0
        assert snap.counts["shadow_quoted"] == 2
        assert [d.decision for d in snap.recent_decisions] == ["shadow_quoted"] * 2
        # The would-be prices: fixed fair 0.50, edge 0.02 -> bids 0.48 / 0.48.
        assert [(q.rfq_id, q.yes_bid_micros, q.no_bid_micros, q.fair_yes_micros,
                 q.edge_yes_micros, q.edge_no_micros) for q in snap.shadow_quotes] == [
            (r, 480_000, 480_000, 500_000, 20_000, 20_000) for r in rfqs]
        detail = "yes 0.4800 no 0.4800 fair 0.5000 edge 0.0200/0.0200"
        assert [d.detail for d in snap.recent_decisions] == [detail, detail]
        # status (JSON), the activity lines and the live view show them.
        assert status["counts"]["shadow_quoted"] == 2
        assert status["shadow_quotes"][0]["yes_bid_dollars"] == "0.4800"
        assert status["shadow_quotes"][0]["fair_yes_dollars"] == "0.5000"
        lines: list[str] = []

        class Sink:
            def write(self, text: str) -> int:
                lines.extend(text.splitlines())
                return len(text)

            def flush(self) -> None:
                pass

        ActivityPrinter(Sink()).update(snap)  # type: ignore[arg-type]
        assert sum("shadow_quoted" in x and detail in x for x in lines) == 2
        console = Console(record=True, width=140, height=40, color_system=None)
        console.print(render(snap))
        text = console.export_text()
        assert "would-be quotes (shadow" in text
        assert text.count("0.5000") >= 2
        # The store keeps them as decisions, with the prices.
        with Store(tmp_path / "quoter.db") as db:
            stored = [(d.decision, d.detail) for d in db.decisions()
                      if d.decision.startswith("shadow_")]
        assert stored == [("shadow_quoted", detail)] * 2
