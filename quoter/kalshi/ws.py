"""The Kalshi WebSocket feed: one authenticated connection, kept alive, yielding raw frames.

``KalshiFeed.run()`` is the one reconnect loop (DESIGN §9): sign the handshake with the injected
wall clock (kalshi-api.md §1.3), connect, re-send every wanted subscription, read frames until
the connection dies or goes stale, back off, repeat. Data frames go to a bounded output queue
as ``RawFrame``; what the feed learns about itself goes to a control queue as notices
(``FeedConnected``, ``FeedDisconnected``, ``SubscriptionLost``, ``SubscriptionRestored``,
``SequenceGap``).

Backpressure: when the output queue is full the reader *waits*; frames are never dropped here.
The socket buffers fill, Kalshi answers a slow reader with error 25 (subscription buffer
overflow, §2.3), and the feed then resubscribes and emits ``SubscriptionLost``, then
``SubscriptionRestored`` once the new subscription is acked. The unsubscribe of the broken sid
is waited for only ``unsubscribe_timeout_s``: its reply can be lost in the same overflow, and
the channel is dark until the resubscribe. A very long stall can also trip the websockets
keepalive (no pong processed) and force a reconnect.

Staleness: if no frame arrives for ``stale_after_s`` the feed pings; no pong within
``stale_after_s / 2`` closes the connection as stale and reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from quoter.domain.events import SequenceGap
from quoter.errors import AuthError, TransportError
from quoter.kalshi.auth import Signer, signing_path, ws_headers
from quoter.kalshi.bounds import json_depth_exceeds
from quoter.kalshi.ws_types import (
    ALREADY_SUBSCRIBED,
    RESYNC_ERROR_CODES,
    Backoff,
    FeedConnected,
    FeedDisconnected,
    FeedNotice,
    FeedStats,
    RawFrame,
    SubscriptionLost,
    SubscriptionRestored,
    SubscriptionView,
    WsCommandError,
)
from quoter.kalshi.ws_wire import (
    CONTROL_TYPES,
    Envelope,
    decode_envelope,
    decode_error,
    decode_listed,
    decode_subscribed,
    decode_tickers,
    encode_command,
)

__all__ = [
    "Backoff",
    "FeedConnected",
    "FeedDisconnected",
    "FeedNotice",
    "FeedStats",
    "KalshiFeed",
    "RawFrame",
    "SubscriptionLost",
    "SubscriptionRestored",
    "SubscriptionView",
    "WsCommandError",
    "sharded_feeds",
]

log = structlog.get_logger("quoter.kalshi.ws")

UpdateAction = Literal["add_markets", "delete_markets", "get_snapshot"]


@dataclass(slots=True)
class _Sub:
    """A wanted subscription: survives reconnects; ``sid`` is per connection."""

    key: int
    channel: str
    params: dict[str, Any]
    sid: int | None = None
    conn_gen: int = -1  # the connection on which it was last (re)sent; -1 = send again
    error: WsCommandError | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self) -> SubscriptionView:
        tickers = self.params.get("market_tickers") or ()
        return SubscriptionView(
            key=self.key, channel=self.channel, sid=self.sid,
            market_tickers=tuple(tickers), shard_key=self.params.get("shard_key"),
        )


@dataclass(slots=True)
class _Conn:
    """State that dies with one connection."""

    ws: ClientConnection
    conn_id: str
    gen: int
    next_id: int = 1  # §2.1: ids unique per session; 0 means "no id"
    pending: dict[int, tuple[asyncio.Future[Envelope], _Sub | None]] = field(default_factory=dict)
    by_sid: dict[int, _Sub] = field(default_factory=dict)
    last_seq: dict[int, int] = field(default_factory=dict)
    # When the last frame arrived, on the connection and per sid: a gap starts after it.
    last_frame_ns: int = 0
    last_sid_ns: dict[int, int] = field(default_factory=dict)


class KalshiFeed:
    """One authenticated, self-healing WebSocket connection to Kalshi."""

    def __init__(
        self,
        url: str,
        signer: Signer,
        *,
        wall_ms: Callable[[], int],
        now_ns: Callable[[], int],
        name: str = "ws",
        out: asyncio.Queue[RawFrame] | None = None,
        queue_size: int = 10_000,
        control: asyncio.Queue[FeedNotice] | None = None,
        priority_out: asyncio.Queue[RawFrame] | None = None,
        priority_types: frozenset[str] = frozenset(),
        shed_types: frozenset[str] = frozenset(),
        tap: Callable[[RawFrame], None] | None = None,
        tap_out: Callable[[RawFrame], None] | None = None,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ping_interval_s: float | None = 10.0,
        ping_timeout_s: float | None = 10.0,
        stale_after_s: float = 30.0,
        ack_timeout_s: float = 5.0,
        unsubscribe_timeout_s: float = 1.0,
        open_timeout_s: float = 10.0,
        close_timeout_s: float = 2.0,
        max_size_bytes: int = 4 * 1024 * 1024,
        proxy: str | Literal[True] | None = True,
    ) -> None:
        self.url = url
        self.name = name
        self._signer = signer
        self._signed_path = signing_path(url)
        self._wall_ms = wall_ms
        self._now_ns = now_ns
        self.out: asyncio.Queue[RawFrame] = out if out is not None else asyncio.Queue(queue_size)
        # Notices are rare and must not be lost: unbounded unless the caller bounds it.
        self.control: asyncio.Queue[FeedNotice] = (
            control if control is not None else asyncio.Queue()
        )
        # The priority lane starts at the socket: frames of these types (ours: accepts, fills)
        # skip the data queue, so an accept never waits behind a flood of rfq_created frames
        # still to be decoded and filtered. Order within each lane is kept.
        self.priority_out = priority_out
        self._priority_types = priority_types if priority_out is not None else frozenset()
        # Overload: with the data queue full, a frame of these types (new RFQs: work that is
        # worthless late) is dropped and counted instead of stopping the reader, which would
        # leave an accept unread behind it in the socket.
        self._shed_types = shed_types
        self._tap = tap
        self._tap_out = tap_out
        self._backoff = backoff if backoff is not None else Backoff()
        self._sleep = sleep
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._stale_after_s = stale_after_s
        self._ack_timeout_s = ack_timeout_s
        self._unsubscribe_timeout_s = min(ack_timeout_s, unsubscribe_timeout_s)
        self._open_timeout_s = open_timeout_s
        self._close_timeout_s = close_timeout_s
        self._max_size_bytes = max_size_bytes
        self._proxy = proxy
        self.stats = FeedStats()
        self._subs: dict[int, _Sub] = {}
        self._keys = itertools.count(1)
        self._gens = itertools.count(1)
        self._dirty = asyncio.Event()
        self._conn: _Conn | None = None

    # --- public: subscriptions ----------------------------------------------------------

    def add_subscription(
        self,
        channels: Sequence[str],
        *,
        market_tickers: Sequence[str] | None = None,
        shard_factor: int | None = None,
        shard_key: int | None = None,
        use_yes_price: bool | None = None,
        send_initial_snapshot: bool | None = None,
        skip_ticker_ack: bool | None = None,
        user_filter: str | None = None,
    ) -> list[int]:
        """Want these channels (one subscription each) from now on; return their keys."""
        if not channels:
            raise ValueError("subscribe needs at least one channel")  # §2.3 code 3
        if shard_key is not None and shard_factor is None:
            raise ValueError("shard_key needs shard_factor")  # §2.3 code 20
        if shard_factor is not None and not 1 <= shard_factor <= 100:
            raise ValueError(f"shard_factor must be 1..100, got {shard_factor}")
        if shard_factor is not None and shard_key is not None and not 0 <= shard_key < shard_factor:
            raise ValueError(f"shard_key must be in [0, {shard_factor}), got {shard_key}")
        params: dict[str, Any] = {
            "market_tickers": list(market_tickers) if market_tickers is not None else None,
            "shard_factor": shard_factor,
            "shard_key": shard_key,
            "use_yes_price": use_yes_price,
            "send_initial_snapshot": send_initial_snapshot,
            "skip_ticker_ack": skip_ticker_ack,
            "user_filter": user_filter,
        }
        params = {k: v for k, v in params.items() if v is not None}
        keys = []
        for channel in channels:
            sub = _Sub(key=next(self._keys), channel=channel, params=dict(params))
            self._subs[sub.key] = sub
            keys.append(sub.key)
        self._dirty.set()
        return keys

    async def subscribe(
        self,
        channels: Sequence[str],
        *,
        market_tickers: Sequence[str] | None = None,
        shard_factor: int | None = None,
        shard_key: int | None = None,
        use_yes_price: bool | None = None,
        send_initial_snapshot: bool | None = None,
        skip_ticker_ack: bool | None = None,
        user_filter: str | None = None,
        timeout_s: float | None = None,
    ) -> list[SubscriptionView]:
        """Subscribe and wait for the acks (on this connection or the next one).

        The subscriptions are kept and re-sent after every reconnect. Raises ``WsCommandError``
        if the exchange refuses one (the refused one is forgotten), ``TimeoutError`` if no
        ack came within ``timeout_s`` (default ``ack_timeout_s``; the wish is kept).
        """
        keys = self.add_subscription(
            channels, market_tickers=market_tickers, shard_factor=shard_factor,
            shard_key=shard_key, use_yes_price=use_yes_price,
            send_initial_snapshot=send_initial_snapshot, skip_ticker_ack=skip_ticker_ack,
            user_filter=user_filter,
        )
        subs = [self._subs[k] for k in keys]
        async with asyncio.timeout(timeout_s if timeout_s is not None else self._ack_timeout_s):
            for sub in subs:
                await sub.ready.wait()
        for sub in subs:
            if sub.error is not None:
                raise sub.error
        return [sub.view() for sub in subs]

    async def unsubscribe(self, sids: Iterable[int]) -> None:
        """Stop and forget the subscriptions with these (current-connection) sids."""
        wanted = set(sids)
        doomed = [sub for sub in self._subs.values() if sub.sid in wanted]
        for sub in doomed:
            del self._subs[sub.key]
        conn = self._conn
        if conn is None:
            return
        for sid in sorted(wanted):
            # One command per sid: each gets exactly one reply (§2.2 ``unsubscribed``).
            reply = await self._request(conn, "unsubscribe", {"sids": [sid]})
            conn.by_sid.pop(sid, None)
            if reply.type == "error":
                body = decode_error(reply)
                raise WsCommandError("unsubscribe", body.code, body.msg)

    async def update_subscription(
        self, sid: int, action: UpdateAction, market_tickers: Sequence[str]
    ) -> tuple[str, ...] | None:
        """Add/delete markets on a subscription, or ask for fresh book snapshots (§2.1).

        Returns the subscription's full ticker list from the ``ok`` (None with
        ``skip_ticker_ack``). Market changes are remembered for resubscription.
        """
        conn = self._require_conn()
        params = {"sid": sid, "market_tickers": list(market_tickers), "action": action}
        reply = await self._request(conn, "update_subscription", params)
        if reply.type == "error":
            body = decode_error(reply)
            raise WsCommandError("update_subscription", body.code, body.msg)
        sub = conn.by_sid.get(sid)
        if sub is not None and action != "get_snapshot":
            current = list(sub.params.get("market_tickers") or [])
            if action == "add_markets":
                current += [t for t in market_tickers if t not in current]
            else:
                current = [t for t in current if t not in set(market_tickers)]
            sub.params["market_tickers"] = current
        return decode_tickers(reply)

    async def list_subscriptions(self) -> list[tuple[str, int]]:
        """Ask the exchange which (channel, sid) pairs this connection has."""
        conn = self._require_conn()
        reply = await self._request(conn, "list_subscriptions", None)
        if reply.type == "error":
            body = decode_error(reply)
            raise WsCommandError("list_subscriptions", body.code, body.msg)
        return [(item.channel, item.sid) for item in decode_listed(reply)]

    def subscriptions(self) -> list[SubscriptionView]:
        """Every wanted subscription with its current sid (None while being (re)sent)."""
        return [sub.view() for sub in self._subs.values()]

    def subscription_for_sid(self, sid: int) -> SubscriptionView | None:
        """The wanted subscription behind a sid of the current connection, if any."""
        conn = self._conn
        sub = conn.by_sid.get(sid) if conn is not None else None
        return sub.view() if sub is not None else None

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._conn is not None

    async def frames(self) -> AsyncGenerator[RawFrame, None]:
        """Yield data frames from the output queue, forever."""
        while True:
            yield await self.out.get()

    # --- public: the loop ---------------------------------------------------------------

    async def run(self) -> None:
        """Connect, resubscribe and read until cancelled; raises ``AuthError`` on 401/403."""
        while True:
            conn = await self._open()
            if conn is not None:
                await self._serve(conn)
            await self._sleep(self._backoff.next_delay_s())

    # --- connection ---------------------------------------------------------------------

    async def _open(self) -> _Conn | None:
        gen = next(self._gens)
        conn_id = f"{self.name}-{gen}"
        # §1.3: auth only in the upgrade request, signed at connect time.
        headers = ws_headers(self._signer, self._wall_ms(), self._signed_path)
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                ping_interval=self._ping_interval_s,
                ping_timeout=self._ping_timeout_s,
                open_timeout=self._open_timeout_s,
                close_timeout=self._close_timeout_s,
                max_size=self._max_size_bytes,
                proxy=self._proxy,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthError(
                    f"Kalshi refused the WebSocket credentials (HTTP {status})"
                ) from None
            self._connect_failed(conn_id, f"http_{status}")
            return None
        except InvalidURI:
            raise
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            self._connect_failed(conn_id, type(exc).__name__)
            return None
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        log.info("ws_connected", feed=self.name, conn_id=conn_id, url=self.url)
        return _Conn(ws=ws, conn_id=conn_id, gen=gen)

    def _connect_failed(self, conn_id: str, reason: str) -> None:
        self.stats.connect_failures += 1
        log.warning("ws_connect_failed", feed=self.name, conn_id=conn_id, reason=reason)

    async def _serve(self, conn: _Conn) -> None:
        self._conn = conn
        reason = "cancelled"
        try:
            async with asyncio.TaskGroup() as tg:
                manager = tg.create_task(self._manage(conn), name=f"{conn.conn_id}-subscriptions")
                reason = await self._read(conn)
                manager.cancel()
        except* TransportError as group:
            reason = f"transport: {_first_leaf(group)}"
        finally:
            await self._teardown(conn, reason)

    async def _teardown(self, conn: _Conn, reason: str) -> None:
        self._conn = None
        for fut, _ in conn.pending.values():
            if not fut.done():
                fut.set_exception(TransportError(f"connection {conn.conn_id} closed"))
        conn.pending.clear()
        for sub in self._subs.values():
            sub.sid, sub.conn_gen = None, -1
            if sub.error is None:
                sub.ready.clear()
        if reason == "stale":
            conn.ws.transport.abort()  # a silent peer will not answer a closing handshake
        else:
            with contextlib.suppress(Exception):
                await conn.ws.close()
        log.info("ws_disconnected", feed=self.name, conn_id=conn.conn_id, reason=reason)
        self._notify(FeedDisconnected(self.name, conn.conn_id, reason, self._now_ns(),
                                      last_frame_ns=conn.last_frame_ns))

    async def _read(self, conn: _Conn) -> str:
        """Read until the connection ends; return why it ended."""
        ws = conn.ws
        while True:
            try:
                async with asyncio.timeout(self._stale_after_s):
                    data = await ws.recv(decode=False)
            except TimeoutError:
                if await self._answers_ping(ws):
                    continue
                self.stats.stale_reconnects += 1
                log.warning("ws_stale_reconnect", feed=self.name, conn_id=conn.conn_id,
                            stale_after_s=self._stale_after_s)
                return "stale"
            except ConnectionClosed as exc:
                return f"closed: code={exc.rcvd.code if exc.rcvd else None}"
            ts_recv_ns = self._now_ns()
            frame = RawFrame(data, ts_recv_ns, conn.conn_id)
            self.stats.frames += 1
            if self._tap is not None:
                self._call_tap(self._tap, frame)
            consumed, msg_type = self._on_frame(conn, frame)
            conn.last_frame_ns = ts_recv_ns  # after: an error frame's notice sees the one before
            if consumed:
                continue
            if msg_type in self._priority_types and self.priority_out is not None:
                self.stats.priority_frames += 1
                await self.priority_out.put(frame)
            elif msg_type in self._shed_types and self.out.full():
                self.stats.shed_frames += 1
                if self.stats.shed_frames & (self.stats.shed_frames - 1) == 0:  # 1, 2, 4, ...
                    log.warning("ws_frames_shed", feed=self.name, conn_id=conn.conn_id,
                                shed_frames=self.stats.shed_frames, msg_type=msg_type)
            else:
                await self.out.put(frame)

    async def _answers_ping(self, ws: ClientConnection) -> bool:
        self.stats.silence_pings += 1
        try:
            pong = await ws.ping()
            async with asyncio.timeout(self._stale_after_s / 2):
                await pong
        except (TimeoutError, ConnectionClosed):
            return False
        return True

    def _on_frame(self, conn: _Conn, frame: RawFrame) -> tuple[bool, str | None]:
        """Handle what the feed itself must see; return (consumed, the frame's type)."""
        if json_depth_exceeds(frame.data):
            # A deep frame would make the envelope decoder raise RecursionError and end this
            # task. Forwarded unread: the decoder refuses it the same way (counted, raw kept).
            self.stats.errors += 1
            self.stats.rejected += 1
            log.warning("ws_frame_rejected", feed=self.name, conn_id=conn.conn_id,
                        reason="too_deep", size_bytes=len(frame.data))
            return False, None
        try:
            env = decode_envelope(frame.data)
        except (msgspec.DecodeError, RecursionError):
            self.stats.errors += 1
            return False, None  # forward it: the decoder counts and keeps malformed frames
        if env.sid is not None and env.seq is not None:
            # ok/unsubscribed replies share the subscription's seq counter (§2.2).
            self._check_seq(conn, env.sid, env.seq, frame.ts_recv_ns)
        if env.id and env.id in conn.pending:
            self._on_reply(conn, env)
            return True, env.type
        if env.type == "error":
            self._on_error_frame(conn, env, frame.ts_recv_ns)
            return True, env.type
        return env.type in CONTROL_TYPES, env.type

    def _check_seq(self, conn: _Conn, sid: int, seq: int, ts_recv_ns: int) -> None:
        last = conn.last_seq.get(sid)
        conn.last_seq[sid] = seq
        conn.last_sid_ns[sid] = ts_recv_ns
        # The first seq seen on a sid is taken as is (§2.4: seq is optional on some channels).
        if last is None or seq == last + 1:
            return
        sub = conn.by_sid.get(sid)
        channel = sub.channel if sub is not None else "unknown"
        self.stats.gaps += 1
        log.warning("ws_sequence_gap", feed=self.name, conn_id=conn.conn_id, channel=channel,
                    sid=sid, expected_seq=last + 1, received_seq=seq)
        self._notify(SequenceGap(channel=channel, sid=sid, expected_seq=last + 1,
                                 received_seq=seq, ts_recv_ns=ts_recv_ns))

    def _on_reply(self, conn: _Conn, env: Envelope) -> None:
        assert env.id is not None
        fut, sub = conn.pending.pop(env.id)
        if env.type == "subscribed" and sub is not None:
            # Map the sid here, before any data frame of that sid is read.
            try:
                body = decode_subscribed(env)
            except msgspec.DecodeError as exc:
                if not fut.done():
                    fut.set_exception(TransportError(f"bad subscribed reply: {exc}"))
                return
            self._bind(conn, sub, body.sid)
        if not fut.done():
            fut.set_result(env)

    def _bind(self, conn: _Conn, sub: _Sub, sid: int) -> None:
        sub.sid = sid
        conn.by_sid[sid] = sub
        log.info("ws_subscribed", feed=self.name, conn_id=conn.conn_id, channel=sub.channel,
                 sid=sid, key=sub.key)

    def _on_error_frame(self, conn: _Conn, env: Envelope, ts_recv_ns: int) -> None:
        body = decode_error(env)
        sid = env.sid if env.sid is not None else body.sid
        self.stats.errors += 1
        log.warning("ws_error_frame", feed=self.name, conn_id=conn.conn_id, code=body.code,
                    message=body.msg, sid=sid, cmd_id=env.id)
        if body.code not in RESYNC_ERROR_CODES:
            return
        if sid is not None:
            hit = [conn.by_sid[sid]] if sid in conn.by_sid else []
        else:  # an unattributed overflow: every subscription may have lost frames
            hit = list(conn.by_sid.values())
        for sub in hit:
            assert sub.sid is not None
            self._notify(SubscriptionLost(
                feed=self.name, conn_id=conn.conn_id, channel=sub.channel, sid=sub.sid,
                code=body.code, message=body.msg, ts_recv_ns=ts_recv_ns,
                market_tickers=tuple(sub.params.get("market_tickers") or ()),
                last_frame_ns=conn.last_sid_ns.get(sub.sid, 0),
            ))
            sub.conn_gen = -1  # the manager unsubscribes the old sid and subscribes again
            self.stats.resubscribes += 1
        if hit:
            self._dirty.set()

    # --- subscription manager -----------------------------------------------------------

    async def _manage(self, conn: _Conn) -> None:
        """Send every wanted subscription not yet sent on this connection, as wishes change."""
        announced = False
        while True:
            todo = [sub for sub in self._subs.values() if sub.conn_gen != conn.gen]
            if todo:
                async with asyncio.TaskGroup() as tg:
                    for sub in todo:
                        tg.create_task(self._subscribe_one(conn, sub))
            if not announced:
                announced = True
                self._backoff.reset()  # a full (re)subscribe worked: the next failure is fresh
                self._notify(FeedConnected(self.name, conn.conn_id, self._now_ns(),
                                           tuple(self.subscriptions())))
            await self._dirty.wait()
            self._dirty.clear()

    async def _subscribe_one(self, conn: _Conn, sub: _Sub) -> None:
        sub.conn_gen = conn.gen
        lost_frame_ns: int | None = None
        if sub.sid is not None:  # a broken subscription: drop the old sid first
            old = sub.sid
            conn.by_sid.pop(old, None)
            conn.last_seq.pop(old, None)
            lost_frame_ns = conn.last_sid_ns.pop(old, 0)
            sub.sid = None
            try:  # error 7 (unknown sid) is fine
                await self._request(conn, "unsubscribe", {"sids": [old]},
                                    timeout_s=self._unsubscribe_timeout_s)
            except _AckTimeoutError:
                # Under the overflow that broke the subscription its reply can be lost too;
                # every second waited here is a second of that channel missing, so go on.
                self.stats.unanswered_unsubscribes += 1
                log.warning("ws_unsubscribe_unanswered", feed=self.name, conn_id=conn.conn_id,
                            sid=old, channel=sub.channel)
        params = {"channels": [sub.channel], **sub.params}
        reply = await self._request(conn, "subscribe", params, sub)
        if reply.type == "error":
            body = decode_error(reply)
            if body.code == ALREADY_SUBSCRIBED:
                await self._adopt_existing(conn, sub)
            else:
                log.warning("ws_error_frame", feed=self.name, conn_id=conn.conn_id,
                            code=body.code, message=body.msg, channel=sub.channel, cmd_id=reply.id)
                self.stats.errors += 1
                sub.error = WsCommandError("subscribe", body.code, body.msg)
                self._subs.pop(sub.key, None)
        late_sid = next((sid for sid, bound in conn.by_sid.items() if bound is sub), None)
        if sub.key not in self._subs and late_sid is not None:
            # Unsubscribed while the ack was in flight: undo it.
            conn.by_sid.pop(late_sid, None)
            await self._request(conn, "unsubscribe", {"sids": [late_sid]})
        elif lost_frame_ns is not None and late_sid is not None:
            self._notify(SubscriptionRestored(
                feed=self.name, conn_id=conn.conn_id, channel=sub.channel, sid=late_sid,
                ts_recv_ns=self._now_ns(), lost_frame_ns=lost_frame_ns))
        sub.ready.set()

    async def _adopt_existing(self, conn: _Conn, sub: _Sub) -> None:
        """Error 6 (already subscribed) is tolerated: find the live sid of that channel."""
        log.info("ws_already_subscribed", feed=self.name, conn_id=conn.conn_id, channel=sub.channel)
        reply = await self._request(conn, "list_subscriptions", None)
        if reply.type != "ok":
            return
        try:
            listed = decode_listed(reply)
        except msgspec.DecodeError:
            return
        for item in listed:
            if item.channel == sub.channel and item.sid not in conn.by_sid:
                self._bind(conn, sub, item.sid)
                return

    # --- commands -----------------------------------------------------------------------

    def _require_conn(self) -> _Conn:
        if self._conn is None:
            raise TransportError(f"feed {self.name} is not connected")
        return self._conn

    async def _request(
        self, conn: _Conn, cmd: str, params: dict[str, Any] | None, sub: _Sub | None = None,
        *, timeout_s: float | None = None,
    ) -> Envelope:
        """Send one command and wait for its reply (matched by id) for ``timeout_s`` (default
        ``ack_timeout_s``); no reply in time is an ``_AckTimeoutError``."""
        cmd_id = conn.next_id
        conn.next_id += 1
        text = encode_command(cmd_id, cmd, params)
        fut: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        conn.pending[cmd_id] = (fut, sub)
        try:
            if self._tap_out is not None:
                self._call_tap(self._tap_out, RawFrame(text, self._now_ns(), conn.conn_id))
            self.stats.commands += 1
            try:
                await conn.ws.send(text)
            except ConnectionClosed as exc:
                raise TransportError(f"connection {conn.conn_id} closed during {cmd}") from exc
            try:
                wait_s = timeout_s if timeout_s is not None else self._ack_timeout_s
                async with asyncio.timeout(wait_s):
                    return await fut
            except TimeoutError:
                raise _AckTimeoutError(
                    f"{cmd} (id {cmd_id}) not acknowledged within {wait_s}s"
                ) from None
        finally:
            conn.pending.pop(cmd_id, None)

    def _call_tap(self, tap: Callable[[RawFrame], None], frame: RawFrame) -> None:
        # A broken recorder must not take the feed down; it is loud in logs and counters.
        try:
            tap(frame)
        except Exception:
            self.stats.errors += 1
            log.exception("ws_tap_failed", feed=self.name, conn_id=frame.conn_id)

    def _notify(self, notice: FeedNotice) -> None:
        try:
            self.control.put_nowait(notice)
        except asyncio.QueueFull:
            log.error("ws_control_queue_full", feed=self.name, notice=type(notice).__name__)


class _AckTimeoutError(TransportError):
    """A command's reply did not come in time (the connection may still be fine)."""


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def sharded_feeds(
    n: int,
    url: str,
    signer: Signer,
    *,
    wall_ms: Callable[[], int],
    now_ns: Callable[[], int],
    out: asyncio.Queue[RawFrame] | None = None,
    control: asyncio.Queue[FeedNotice] | None = None,
    priority_out: asyncio.Queue[RawFrame] | None = None,
    name: str = "comms",
    **feed_kwargs: Any,
) -> list[KalshiFeed]:
    """Build ``n`` feeds, one connection per ``shard_key``, all subscribed to communications.

    Kalshi splits RFQ traffic by market ticker across ``shard_factor`` keys (§2.6); the feeds
    share one output, one priority and one control queue (``conn_id`` tells them apart).
    """
    if not 1 <= n <= 100:
        raise ValueError(f"shard count must be 1..100, got {n}")
    queue_size = int(feed_kwargs.pop("queue_size", 10_000))
    shared_out: asyncio.Queue[RawFrame] = out if out is not None else asyncio.Queue(queue_size)
    shared_control: asyncio.Queue[FeedNotice] = control if control is not None else asyncio.Queue()
    feeds = []
    for key in range(n):
        feed = KalshiFeed(
            url, signer, wall_ms=wall_ms, now_ns=now_ns, name=f"{name}-s{key}",
            out=shared_out, control=shared_control, priority_out=priority_out, **feed_kwargs,
        )
        feed.add_subscription(["communications"], shard_factor=n, shard_key=key)
        feeds.append(feed)
    return feeds
