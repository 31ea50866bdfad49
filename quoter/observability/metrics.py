"""Prometheus metrics on a dedicated registry (no global state: each service owns one).

Every name carries the ``quoter_`` prefix (:data:`NAMESPACE`), so a shared Prometheus can
tell them apart; ``quoter/deploy`` dashboards refer to these names (a test checks each panel's
query against what :meth:`Metrics.render` exports).

Latency histograms are in seconds (Prometheus convention); money gauges are exported in
dollars. That is the one place money becomes a float: at the export boundary, for display.
Inside quoter money stays integer micro-dollars (use the ``set_*_micros`` helpers).
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from quoter.domain.money import CENTI_PER_CONTRACT, MICROS_PER_DOLLAR

__all__ = ["CONTENT_TYPE_LATEST", "LATENCY_BUCKETS_S", "NAMESPACE", "Metrics"]

#: The prefix of every exported metric name.
NAMESPACE: Final = "quoter"

#: 50 us .. 10 s: the hot path is sub-millisecond, confirms round-trip in ~0.1 s (§0a).
LATENCY_BUCKETS_S: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0,
)
_NS_PER_S: Final = 1_000_000_000


class Metrics:
    """Every metric the service exports, registered on its own ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry

        def hist(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, registry=r, buckets=LATENCY_BUCKETS_S,
                             namespace=NAMESPACE)

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(name, doc, labels, registry=r, namespace=NAMESPACE)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(name, doc, labels, registry=r, namespace=NAMESPACE)

        self.frame_to_decision_seconds = hist(
            "frame_to_decision_seconds", "Frame receipt to engine decision."
        )
        self.decision_to_request_seconds = hist(
            "decision_to_request_seconds", "Engine decision to REST request sent."
        )
        self.accept_to_confirm_sent_seconds = hist(
            "accept_to_confirm_sent_seconds", "quote_accepted receipt to confirm request sent."
        )
        self.confirm_round_trip_seconds = hist(
            "confirm_round_trip_seconds", "Confirm request sent to response received."
        )
        self.pipe_lag_seconds = hist(
            "pipe_lag_seconds", "Exchange created_ts to our receipt (wall clocks)."
        )

        self.rfq_decisions_total = counter(
            "rfq_decisions_total", "RFQ decisions.", ("decision", "reason")
        )
        self.frames_total = counter("frames_total", "Inbound frames.", ("type",))
        self.decode_errors_total = counter(
            "decode_errors_total", "Frames that failed to decode (dropped, raw kept).",
            ("type", "reason")
        )
        self.unknown_messages_total = counter(
            "unknown_messages_total", "Frames of an unknown type.", ("type",)
        )
        self.reconnects_total = counter("reconnects_total", "WebSocket reconnects.")
        self.config_reloads_total = counter(
            "config_reloads_total", "Strategy config reloads.", ("result",)
        )
        self.engine_errors_total = counter(
            "engine_errors_total", "Events the engine failed on (each halts quoting)."
        )
        self.rest_errors_total = counter("rest_errors_total", "REST errors by code.", ("code",))

        self.positions = gauge("positions", "Position in contracts (YES positive).", ("market",))
        self.exposure_worst_case_dollars = gauge(
            "exposure_worst_case_dollars", "Worst-case loss over all positions."
        )
        self.pnl_realized_dollars = gauge("pnl_realized_dollars", "Realized PnL net of fees.")
        self.pnl_marked_dollars = gauge(
            "pnl_marked_dollars", "Realized PnL plus open positions marked to the mid."
        )
        self.open_quotes = gauge("open_quotes", "Quotes resting on the exchange.")
        self.rate_bucket_tokens = gauge(
            "rate_bucket_tokens", "Rate-limit tokens left.", ("bucket",)
        )
        self.queue_depth = gauge("queue_depth", "Items waiting in a queue.", ("queue",))
        self.halted = gauge("halted", "1 when quoting is halted.")
        # A leak shows as growth here (the chaos soak samples it): tasks are never fire-and-forget.
        self.tasks = gauge("tasks", "asyncio tasks alive in the service's event loop.")

    # --- helpers that keep units straight ---------------------------------------------

    @staticmethod
    def _seconds(delta_ns: int) -> float:
        return max(delta_ns, 0) / _NS_PER_S

    def observe_ns(self, histogram: Histogram, delta_ns: int) -> None:
        """Observe a nanosecond duration on a seconds histogram (negatives clamp to 0)."""
        histogram.observe(self._seconds(delta_ns))

    def record_decision(self, decision: str, reason: str) -> None:
        """Count one RFQ decision."""
        self.rfq_decisions_total.labels(decision=decision, reason=reason).inc()

    def set_position_centi(self, market: str, position_centi: int) -> None:
        """Export a position given in hundredths of a contract."""
        self.positions.labels(market=market).set(position_centi / CENTI_PER_CONTRACT)

    def set_exposure_micros(self, worst_case_micros: int) -> None:
        """Export worst-case exposure given in micro-dollars."""
        self.exposure_worst_case_dollars.set(worst_case_micros / MICROS_PER_DOLLAR)

    def set_pnl_realized_micros(self, pnl_micros: int) -> None:
        """Export realized PnL given in micro-dollars."""
        self.pnl_realized_dollars.set(pnl_micros / MICROS_PER_DOLLAR)

    def set_pnl_marked_micros(self, pnl_micros: int) -> None:
        """Export marked-to-mid PnL given in micro-dollars."""
        self.pnl_marked_dollars.set(pnl_micros / MICROS_PER_DOLLAR)

    def set_halted(self, halted: bool) -> None:
        """Export the halt state."""
        self.halted.set(1 if halted else 0)

    def render(self) -> bytes:
        """Return the Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
