"""The WebSocket feed against a real local Kalshi-like server (tests/wsserver.py)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from structlog.testing import capture_logs
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from wsserver import KalshiWsServer

from quoter.clock import LiveClock
from quoter.domain.events import SequenceGap
from quoter.errors import AuthError, TransportError
from quoter.kalshi.auth import Signer
from quoter.kalshi.ws import (
    Backoff,
    FeedConnected,
    FeedDisconnected,
    KalshiFeed,
    RawFrame,
    SubscriptionLost,
    SubscriptionRestored,
    WsCommandError,
    sharded_feeds,
)

KEY_ID = "0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
CLOCK = LiveClock()
T = TypeVar("T")


def _pem_signer(tmp: Path, name: str) -> Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp / f"{name}.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    path.chmod(0o600)
    return Signer.from_pem_file(KEY_ID, path)


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Signer:
    return _pem_signer(tmp_path_factory.mktemp("keys"), "good")


@pytest.fixture
async def server(signer: Signer) -> AsyncIterator[KalshiWsServer]:
    def wall_ms() -> int:
        return CLOCK.wall_ns() // 1_000_000
    async with KalshiWsServer(signer.public_key(), key_id=KEY_ID, now_ms=wall_ms) as srv:
        yield srv


def make_feed(server: KalshiWsServer, signer: Signer, **kw: Any) -> KalshiFeed:
    opts: dict[str, Any] = {
        "wall_ms": lambda: CLOCK.wall_ns() // 1_000_000,
        "now_ns": CLOCK.now_ns,
        "backoff": Backoff(initial_s=0.001, max_s=0.01, factor=2.0, jitter=0.0,
                           rng=random.Random(0)),
        "ping_interval_s": None,
        "stale_after_s": 5.0,
        "ack_timeout_s": 1.0,
        "close_timeout_s": 0.1,
        "proxy": None,
    }
    opts.update(kw)
    return KalshiFeed(server.url, signer, **opts)


@asynccontextmanager
async def running(*feeds: KalshiFeed) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(f.run(), name=f"feed-{f.name}") for f in feeds]
    try:
        yield tasks
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with suppress(asyncio.CancelledError):
                await t


async def next_notice(feed: KalshiFeed, kind: type[T], timeout_s: float = 1.0) -> T:
    async with asyncio.timeout(timeout_s):
        while True:
            notice = await feed.control.get()
            if isinstance(notice, kind):
                return notice


async def eventually(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait until ``cond()`` holds: a deadline, not a fixed sleep, so load only slows it."""
    async with asyncio.timeout(timeout_s):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)  # polling: the state moves in the feed's reader task


async def next_frames(feed: KalshiFeed, n: int, timeout_s: float = 1.0) -> list[RawFrame]:
    async with asyncio.timeout(timeout_s):
        return [await feed.out.get() for _ in range(n)]


# --- handshake ---------------------------------------------------------------------------


async def test_handshake_with_a_wrong_key_is_refused_and_run_raises_auth_error(
    server: KalshiWsServer, tmp_path: Path
) -> None:
    impostor = _pem_signer(tmp_path, "impostor")
    feed = make_feed(server, impostor)
    with pytest.raises(AuthError, match="HTTP 401"):
        await asyncio.wait_for(feed.run(), 2.0)
    assert server.rejected == ["bad signature"]
    assert server.conns == []


async def test_handshake_without_headers_is_refused(server: KalshiWsServer) -> None:
    with pytest.raises(InvalidStatus) as info:
        await connect(server.url, proxy=None, open_timeout=1)
    assert info.value.response.status_code == 401
    assert server.rejected == ["missing headers"]


async def test_signed_handshake_carries_the_three_headers(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        await server.wait_for(lambda: server.live)
    headers = {k.lower(): v for k, v in server.conns[0].headers.items()}
    assert headers["kalshi-access-key"] == KEY_ID
    assert headers["kalshi-access-timestamp"].isdigit()
    assert server.rejected == []


# --- subscribe and frames ------------------------------------------------------------------


async def test_subscribe_returns_the_sid_and_frames_arrive_in_order_with_ts(
    server: KalshiWsServer, signer: Signer
) -> None:
    tapped: list[RawFrame] = []
    sent: list[RawFrame] = []
    feed = make_feed(server, signer, tap=tapped.append, tap_out=sent.append)
    async with running(feed):
        [view] = await feed.subscribe(["communications"])
        [server_sub] = server.subscribed("communications")
        assert view.sid == server_sub.sid
        assert view.channel == "communications"
        before = CLOCK.now_ns()
        for i in range(3):
            await server.push("communications", "rfq_created", {"id": f"r{i}"})
        frames = await next_frames(feed, 3)
        after = CLOCK.now_ns()
    ids = [json.loads(f.data)["msg"]["id"] for f in frames]
    assert ids == ["r0", "r1", "r2"]
    stamps = [f.ts_recv_ns for f in frames]
    assert stamps == sorted(stamps)
    assert before <= stamps[0]
    assert stamps[-1] <= after
    assert {f.conn_id for f in frames} == {"ws-1"}
    assert isinstance(frames[0].data, bytes)  # raw bytes go to the decoder untouched
    # The tap saw the subscribed reply too; the outbound tap saw the command, never headers.
    assert [json.loads(f.data)["type"] for f in tapped][:1] == ["subscribed"]
    assert len(tapped) == 4
    assert [json.loads(f.data) for f in sent] == [
        {"id": 1, "cmd": "subscribe", "params": {"channels": ["communications"]}}
    ]
    assert all("KALSHI" not in str(f.data) for f in sent)
    assert feed.stats.frames == 4


async def test_priority_frames_skip_the_data_queue_from_the_socket_on(
    server: KalshiWsServer, signer: Signer
) -> None:
    lane: asyncio.Queue[RawFrame] = asyncio.Queue()
    feed = make_feed(server, signer, priority_out=lane,
                     priority_types=frozenset({"quote_accepted", "fill"}))
    async with running(feed):
        await feed.subscribe(["communications"])
        for i in range(50):  # a flood nobody has read yet, then an accept behind it
            await server.push("communications", "rfq_created", {"id": f"r{i}"})
        await server.push("communications", "quote_accepted", {"quote_id": "q1"})
        await server.push("communications", "rfq_created", {"id": "r50"})
        async with asyncio.timeout(5):
            accepted = await lane.get()
        assert json.loads(accepted.data)["msg"] == {"quote_id": "q1"}
        # The flood is all still in the data queue, in order, without the accept.
        flood = await next_frames(feed, 51, timeout_s=5)
    assert [json.loads(f.data)["msg"]["id"] for f in flood] == [f"r{i}" for i in range(51)]
    assert feed.stats.priority_frames == 1
    assert lane.empty()


async def test_a_full_data_queue_sheds_new_rfqs_and_the_accept_behind_them_gets_through(
    server: KalshiWsServer, signer: Signer
) -> None:
    lane: asyncio.Queue[RawFrame] = asyncio.Queue()
    feed = make_feed(server, signer, out=asyncio.Queue(3), priority_out=lane,
                     priority_types=frozenset({"quote_accepted"}),
                     shed_types=frozenset({"rfq_created"}))
    async with running(feed):
        await feed.subscribe(["communications"])
        for i in range(10):  # nobody reads the data queue: it holds 3
            await server.push("communications", "rfq_created", {"id": f"r{i}"})
        await server.push("communications", "quote_accepted", {"quote_id": "q1"})
        async with asyncio.timeout(5):
            accepted = await lane.get()
        assert json.loads(accepted.data)["msg"] == {"quote_id": "q1"}
        kept = await next_frames(feed, 3)
    assert [json.loads(f.data)["msg"]["id"] for f in kept] == ["r0", "r1", "r2"]
    assert feed.stats.shed_frames == 7


async def test_without_a_priority_queue_every_data_frame_keeps_one_order(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer, priority_types=frozenset({"quote_accepted"}))
    async with running(feed):
        await feed.subscribe(["communications"])
        await server.push("communications", "rfq_created", {"id": "r0"})
        await server.push("communications", "quote_accepted", {"quote_id": "q1"})
        frames = await next_frames(feed, 2)
    assert [json.loads(f.data)["type"] for f in frames] == ["rfq_created", "quote_accepted"]
    assert feed.stats.priority_frames == 0


async def test_control_replies_are_not_forwarded_as_data(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        [view] = await feed.subscribe(["orderbook_delta"], market_tickers=["KXA-1"],
                                      use_yes_price=True)
        assert view.sid is not None
        tickers = await feed.update_subscription(view.sid, "add_markets", ["KXB-2"])
        listed = await feed.list_subscriptions()
        await server.push("orderbook_delta", "orderbook_delta", {"market_ticker": "KXB-2"})
        [frame] = await next_frames(feed, 1)
    assert tickers == ("KXA-1", "KXB-2")
    assert listed == [("orderbook_delta", view.sid)]
    assert json.loads(frame.data)["type"] == "orderbook_delta"
    assert feed.out.empty()
    cmds = server.conns[0].commands
    assert [c["id"] for c in cmds] == [1, 2, 3]
    assert cmds[0]["params"] == {"channels": ["orderbook_delta"], "market_tickers": ["KXA-1"],
                                 "use_yes_price": True}


async def test_refused_subscription_raises_and_is_forgotten(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        with pytest.raises(WsCommandError) as info:
            await feed.subscribe(["no_such_channel"])
    assert info.value.ws_code == 8
    assert feed.subscriptions() == []


async def test_already_subscribed_error_6_is_tolerated(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        await feed.subscribe(["fill"])
        views = await feed.subscribe(["fill"])  # the server says 6: no exception
        cmds = [c["cmd"] for c in server.conns[0].commands]
    assert cmds == ["subscribe", "subscribe", "list_subscriptions"]
    assert len(views) == 1
    assert len(feed.subscriptions()) == 2


async def test_unsubscribe_forgets_the_subscription(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        [fill] = await feed.subscribe(["fill"])
        await feed.subscribe(["communications"])
        assert fill.sid is not None
        await feed.unsubscribe([fill.sid])
        assert server.subscribed("fill") == []
        await server.kill()
        await server.wait_for(
            lambda: len(server.conns) == 2 and server.subscribed("communications")
        )
    assert [s.channel for s in feed.subscriptions()] == ["communications"]
    assert [c["params"]["channels"] for c in server.conns[1].commands] == [["communications"]]


# --- reconnects ----------------------------------------------------------------------------


async def test_server_kill_reconnects_and_resubscribes_with_new_sids(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    with capture_logs() as logs:
        async with running(feed):
            [old] = await feed.subscribe(["orderbook_delta"], market_tickers=["KXA-1"])
            assert old.sid is not None
            await feed.update_subscription(old.sid, "add_markets", ["KXB-2"])
            first = await next_notice(feed, FeedConnected)
            await server.kill()
            gone = await next_notice(feed, FeedDisconnected)
            again = await next_notice(feed, FeedConnected)
            [new] = again.subscriptions
            await server.push("orderbook_delta", "orderbook_snapshot", {"market_ticker": "KXA-1"})
            [frame] = await next_frames(feed, 1)
            [sub] = server.subscribed("orderbook_delta")
    assert first.conn_id == "ws-1"
    assert gone.conn_id == "ws-1"
    assert again.conn_id == "ws-2"
    assert gone.reason.startswith("closed")
    assert new.sid is not None
    assert new.sid != old.sid
    assert new.key == old.key
    assert sub.sid == new.sid
    # The resubscription carries the markets added since; ids restart at 1 per connection.
    assert server.conns[1].commands == [{"id": 1, "cmd": "subscribe", "params": {
        "channels": ["orderbook_delta"], "market_tickers": ["KXA-1", "KXB-2"]}}]
    assert frame.conn_id == "ws-2"
    assert feed.stats.connects == 2
    assert feed.stats.reconnects == 1
    events = [e["event"] for e in logs]
    assert events.count("ws_connected") == 2
    assert "ws_disconnected" in events
    assert events.count("ws_subscribed") == 2


async def test_connect_failures_back_off_and_retry(signer: Signer) -> None:
    delays: list[float] = []

    async def fake_sleep(delay_s: float) -> None:
        delays.append(delay_s)
        if len(delays) == 4:
            raise asyncio.CancelledError

    # A port nobody listens on: bind, read the port, close.
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    feed = KalshiFeed(
        f"ws://127.0.0.1:{port}/trade-api/ws/v2", signer,
        wall_ms=lambda: CLOCK.wall_ns() // 1_000_000, now_ns=CLOCK.now_ns,
        backoff=Backoff(initial_s=0.1, max_s=0.5, factor=2.0, jitter=0.0),
        sleep=fake_sleep, proxy=None, open_timeout_s=0.5,
    )
    with pytest.raises(asyncio.CancelledError):
        await feed.run()
    assert delays == [0.1, 0.2, 0.4, 0.5]
    assert feed.stats.connect_failures == 4


# --- sequence gaps and subscription errors -------------------------------------------------


async def test_seq_gap_emits_sequence_gap(server: KalshiWsServer, signer: Signer) -> None:
    feed = make_feed(server, signer)
    with capture_logs() as logs:
        async with running(feed):
            [view] = await feed.subscribe(["orderbook_delta"], market_tickers=["KXA-1"])
            await server.push("orderbook_delta", "orderbook_snapshot", {"market_ticker": "KXA-1"})
            await server.push("orderbook_delta", "orderbook_delta", {"market_ticker": "KXA-1"})
            await server.push("orderbook_delta", "orderbook_delta", {"market_ticker": "KXA-1"},
                              skip=2)
            gap = await next_notice(feed, SequenceGap)
            frames = await next_frames(feed, 3)
    assert gap.channel == "orderbook_delta"
    assert gap.sid == view.sid
    assert (gap.expected_seq, gap.received_seq) == (3, 5)
    assert gap.ts_recv_ns == frames[2].ts_recv_ns
    assert feed.stats.gaps == 1
    [logged] = [e for e in logs if e["event"] == "ws_sequence_gap"]
    assert logged["expected_seq"] == 3
    assert logged["received_seq"] == 5


async def test_frames_without_seq_are_not_gaps(server: KalshiWsServer, signer: Signer) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        await feed.subscribe(["communications"])
        for _ in range(3):
            await server.push("communications", "rfq_created", {"id": "r"}, with_seq=False)
        await next_frames(feed, 3)
        assert feed.control.qsize() == 1  # only FeedConnected
    assert feed.stats.gaps == 0


async def test_error_25_resubscribes_the_channel_and_reports_it(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    with capture_logs() as logs:
        async with running(feed):
            await feed.subscribe(["fill"])
            [old] = await feed.subscribe(["communications"])
            assert old.sid is not None
            await server.send_sub_error(old.sid, 25, "Subscription buffer overflow")
            lost = await next_notice(feed, SubscriptionLost)
            [new_sub] = await server.wait_for(
                lambda: [s for s in server.subscribed("communications") if s.sid != old.sid]
            )
            await server.wait_for(lambda: any(
                v.channel == "communications" and v.sid == new_sub.sid
                for v in feed.subscriptions()))
            restored = await next_notice(feed, SubscriptionRestored)
            await server.push("communications", "rfq_created", {"id": "after"})
            [frame] = await next_frames(feed, 1)
    assert (lost.channel, lost.sid, lost.code) == ("communications", old.sid, 25)
    cmds = server.conns[0].commands[2:]
    assert [(c["cmd"], c["params"]) for c in cmds] == [
        ("unsubscribe", {"sids": [old.sid]}),
        ("subscribe", {"channels": ["communications"]}),
    ]
    assert len(server.conns) == 1  # same connection, no reconnect
    assert json.loads(frame.data)["msg"]["id"] == "after"
    assert feed.stats.resubscribes == 1
    assert (restored.channel, restored.sid) == ("communications", new_sub.sid)
    assert any(e["event"] == "ws_error_frame" and e["code"] == 25 for e in logs)


async def test_a_lost_unsubscribe_reply_does_not_keep_the_channel_dark(
    server: KalshiWsServer, signer: Signer
) -> None:
    # Under the overflow that broke a subscription, the reply to our unsubscribe of the broken
    # sid can be lost too. Waiting the full ack timeout for it (then reconnecting) left the
    # communications channel dark for 5 s in the chaos soak, and accepts went unseen.
    server.swallow.add("unsubscribe")
    feed = make_feed(server, signer, ack_timeout_s=30.0, unsubscribe_timeout_s=0.05)
    async with running(feed):
        [old] = await feed.subscribe(["communications"])
        assert old.sid is not None
        await server.send_sub_error(old.sid, 25, "Subscription buffer overflow")
        await next_notice(feed, SubscriptionLost, timeout_s=10.0)
        restored = await next_notice(feed, SubscriptionRestored, timeout_s=10.0)
        await server.push("communications", "rfq_created", {"id": "after"})
        [frame] = await next_frames(feed, 1, timeout_s=10.0)
    assert restored.channel == "communications"
    # (This server kept the old sid, so the resubscribe adopts it: error 6, then the list.)
    assert [c["cmd"] for c in server.conns[0].commands[1:4]] == ["unsubscribe", "subscribe",
                                                                 "list_subscriptions"]
    assert len(server.conns) == 1  # no reconnect: the resubscribe went ahead
    assert feed.stats.unanswered_unsubscribes == 1
    assert json.loads(frame.data)["msg"]["id"] == "after"


async def test_other_error_frames_are_counted_not_resubscribed(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        [view] = await feed.subscribe(["communications"])
        assert view.sid is not None
        await server.send_sub_error(view.sid, 27, "Too many requests")
        await server.push("communications", "rfq_created", {"id": "x"})
        await next_frames(feed, 1)
    assert feed.stats.errors == 1
    assert feed.stats.resubscribes == 0
    assert len(server.conns[0].commands) == 1


# --- stale feed ----------------------------------------------------------------------------


async def test_stale_watchdog_forces_a_reconnect(server: KalshiWsServer, signer: Signer) -> None:
    feed = make_feed(server, signer, stale_after_s=0.1)
    with capture_logs() as logs:
        async with running(feed):
            await feed.subscribe(["communications"])
            server.freeze()  # no frames, no pongs
            gone = await next_notice(feed, FeedDisconnected)
            await next_notice(feed, FeedConnected)  # the one from connection 2
            await server.wait_for(lambda: len(server.conns) == 2 and server.conns[1].subs)
    assert gone.reason == "stale"
    assert feed.stats.stale_reconnects == 1
    assert any(e["event"] == "ws_stale_reconnect" for e in logs)


async def test_quiet_but_alive_feed_is_not_stale(server: KalshiWsServer, signer: Signer) -> None:
    # Each silent window (0.5 s) is answered by a pong well inside its 0.25 s budget, even on
    # a loaded machine; wait for three of them rather than for a fixed time.
    feed = make_feed(server, signer, stale_after_s=0.5)
    async with running(feed):
        await feed.subscribe(["communications"])
        await eventually(lambda: feed.stats.silence_pings >= 3)
    assert feed.stats.silence_pings >= 3
    assert feed.stats.stale_reconnects == 0
    assert len(server.conns) == 1


# --- shards --------------------------------------------------------------------------------


async def test_sharded_feeds_each_subscribe_with_their_shard_key(
    server: KalshiWsServer, signer: Signer
) -> None:
    feeds = sharded_feeds(
        3, server.url, signer, wall_ms=lambda: CLOCK.wall_ns() // 1_000_000,
        now_ns=CLOCK.now_ns, proxy=None, ping_interval_s=None, close_timeout_s=0.1,
    )
    async with running(*feeds):
        subs = await server.wait_for(lambda: (s := server.subscribed("communications"))
                                     and len(s) == 3 and s)
        await server.push("communications", "rfq_created", {"id": "r"})
        frames = await next_frames(feeds[0], 3)
    assert sorted(s.params["shard_key"] for s in subs) == [0, 1, 2]
    assert {s.params["shard_factor"] for s in subs} == {3}
    assert len(server.conns) == 3
    assert all(len(c.subs) == 1 for c in server.conns)
    # One shared output queue; conn ids tell the shards apart.
    assert feeds[1].out is feeds[0].out
    assert sorted(f.conn_id for f in frames) == ["comms-s0-1", "comms-s1-1", "comms-s2-1"]


# --- backoff -------------------------------------------------------------------------------


def test_backoff_grows_caps_and_resets() -> None:
    b = Backoff(initial_s=1.0, max_s=5.0, factor=2.0, jitter=0.0)
    assert [b.next_delay_s() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    b.reset()
    assert b.next_delay_s() == 1.0


def test_backoff_jitter_only_shortens_and_is_seeded() -> None:
    a = Backoff(initial_s=1.0, max_s=1.0, jitter=0.5, rng=random.Random(7))
    b = Backoff(initial_s=1.0, max_s=1.0, jitter=0.5, rng=random.Random(7))
    da = [a.next_delay_s() for _ in range(20)]
    assert da == [b.next_delay_s() for _ in range(20)]
    assert all(0.5 <= d <= 1.0 for d in da)
    assert len(set(da)) > 1


@pytest.mark.parametrize("kw", [{"initial_s": -1.0}, {"max_s": 0.1}, {"factor": 0.5},
                                {"jitter": 1.5}])
def test_backoff_rejects_bad_settings(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)


def test_add_subscription_validates_shards(signer: Signer) -> None:
    feed = KalshiFeed("ws://127.0.0.1:1/trade-api/ws/v2", signer, wall_ms=lambda: 0,
                      now_ns=lambda: 0)
    with pytest.raises(ValueError, match="shard_factor"):
        feed.add_subscription(["communications"], shard_key=1)
    with pytest.raises(ValueError, match="shard_key"):
        feed.add_subscription(["communications"], shard_factor=2, shard_key=2)
    with pytest.raises(ValueError):
        feed.add_subscription([])


# --- failure modes -------------------------------------------------------------------------


async def test_unacknowledged_subscribe_forces_a_reconnect(
    server: KalshiWsServer, signer: Signer
) -> None:
    server.auto_ack = False
    feed = make_feed(server, signer, ack_timeout_s=0.05)
    feed.add_subscription(["communications"])
    async with running(feed):
        gone = await next_notice(feed, FeedDisconnected)
        await server.wait_for(lambda: len(server.conns) >= 2 and server.conns[1].commands)
    assert gone.reason.startswith("transport")
    assert "not acknowledged" in gone.reason
    assert server.conns[1].commands[0]["id"] == 1


async def test_malformed_frames_are_forwarded_and_counted(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        await feed.subscribe(["communications"])
        await server.send_raw(server.conns[0], "{not json")
        frames = feed.frames()
        async with asyncio.timeout(1):
            frame = await anext(frames)
        await frames.aclose()
    assert frame.data == b"{not json"
    assert feed.stats.errors == 1


async def test_a_full_output_queue_delays_but_never_drops(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer, queue_size=1)
    async with running(feed):
        await feed.subscribe(["trade"])
        for i in range(5):
            await server.push("trade", "trade", {"trade_id": str(i)})
        await eventually(lambda: feed.out.qsize() >= 1)
        assert feed.out.qsize() == 1  # the reader waits for room
        frames = await next_frames(feed, 5)
    assert [json.loads(f.data)["msg"]["trade_id"] for f in frames] == ["0", "1", "2", "3", "4"]
    assert feed.stats.gaps == 0


async def test_unattributed_overflow_resubscribes_everything(
    server: KalshiWsServer, signer: Signer
) -> None:
    feed = make_feed(server, signer)
    async with running(feed):
        await feed.subscribe(["fill", "communications"])
        await server.send_raw(server.conns[0],
                              json.dumps({"type": "error", "msg": {"code": 25, "msg": "x"}}))
        lost = {(await next_notice(feed, SubscriptionLost)).channel for _ in range(2)}
        await server.wait_for(lambda: len(server.conns[0].commands) == 6)
    assert lost == {"fill", "communications"}
    assert feed.stats.resubscribes == 2


async def test_commands_need_a_connection(signer: Signer) -> None:
    feed = KalshiFeed("ws://127.0.0.1:1/trade-api/ws/v2", signer, wall_ms=lambda: 0,
                      now_ns=lambda: 0)
    with pytest.raises(TransportError, match="not connected"):
        await feed.list_subscriptions()
    with pytest.raises(TransportError):
        await feed.update_subscription(1, "get_snapshot", ["KXA-1"])


async def test_a_failing_tap_does_not_stop_the_feed(
    server: KalshiWsServer, signer: Signer
) -> None:
    def broken_tap(frame: RawFrame) -> None:
        raise RuntimeError("disk full")

    feed = make_feed(server, signer, tap=broken_tap)
    with capture_logs() as logs:
        async with running(feed):
            await feed.subscribe(["communications"])
            await server.push("communications", "rfq_created", {"id": "r"})
            [frame] = await next_frames(feed, 1)
    assert json.loads(frame.data)["msg"]["id"] == "r"
    assert feed.stats.errors == 2
    assert [e["event"] for e in logs].count("ws_tap_failed") == 2


async def test_a_deeply_nested_frame_is_counted_and_the_feed_keeps_reading(
    server: KalshiWsServer, signer: Signer
) -> None:
    # A 6 KB frame of ~1,000 nested arrays in a field nobody reads: the envelope decoder would
    # raise RecursionError (not a DecodeError) and end the feed task (issue 12 item 2).
    feed = make_feed(server, signer)
    async with running(feed) as [task]:
        await feed.subscribe(["communications"])
        deep = ('{"type":"rfq_created","sid":1,"seq":2,"msg":{"ignored":'
                + "[" * 3000 + "]" * 3000 + "}}")
        await server.send_raw(server.conns[0], deep)
        await server.push("communications", "rfq_created", {"id": "after"})
        frames = await next_frames(feed, 2)
        assert not task.done()
    # Forwarded unread for the decoder to refuse and keep; the next frame still arrives.
    assert frames[0].data == deep.encode()
    assert json.loads(frames[1].data)["msg"]["id"] == "after"
    assert feed.stats.rejected == 1
