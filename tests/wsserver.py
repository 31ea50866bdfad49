"""A real local Kalshi-like WebSocket server for tests (127.0.0.1, OS-chosen port).

It verifies the ``KALSHI-ACCESS-*`` handshake headers with the public key (kalshi-api.md §1.3),
answers ``subscribe`` / ``unsubscribe`` / ``update_subscription`` / ``list_subscriptions`` like
§2.1-2.3, and lets a test push data frames, skip sequence numbers, send error frames (e.g. 25),
kill or freeze connections. Usage::

    async with KalshiWsServer(public_key) as server:
        feed = KalshiFeed(server.url, signer, ...)
        ...
        await server.wait_for(lambda: server.subscribed("communications"))
        await server.push("communications", "rfq_created", {"id": "r1"})
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from quoter.kalshi.auth import (
    HEADER_KEY,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    WS_PATH,
    PublicKey,
    verify_signature,
)

__all__ = ["CHANNELS", "KalshiWsServer", "ServerConn", "ServerSub"]

#: Channel names the server knows (§2.1); anything else gets error 8.
CHANNELS = frozenset({
    "orderbook_delta", "ticker", "trade", "fill", "market_positions", "market_lifecycle_v2",
    "multivariate_market_lifecycle", "communications", "order_group_updates", "user_orders",
    "cfbenchmarks_value", "pyth_value",
})


@dataclass
class ServerSub:
    """One subscription held by a server connection."""

    sid: int
    channel: str
    params: dict[str, Any]
    seq: int = 0

    def next_seq(self, skip: int = 0) -> int:
        self.seq += 1 + skip
        return self.seq


@dataclass
class ServerConn:
    """One accepted client connection."""

    index: int
    ws: ServerConnection
    headers: dict[str, str]
    subs: dict[int, ServerSub] = field(default_factory=dict)
    commands: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False


class KalshiWsServer:
    """The test server; start with ``async with`` and point a feed at ``url``."""

    def __init__(
        self,
        public_key: PublicKey,
        *,
        key_id: str | None = None,
        path: str = WS_PATH,
        now_ms: Callable[[], int] | None = None,
        max_skew_ms: int = 30_000,
        auto_ack: bool = True,
    ) -> None:
        self.public_key = public_key
        self.key_id = key_id
        self.path = path
        self.now_ms = now_ms
        self.max_skew_ms = max_skew_ms
        self.auto_ack = auto_ack  # False: swallow commands (for ack-timeout tests)
        self.swallow: set[str] = set()  # names of commands recorded but never answered
        self.conns: list[ServerConn] = []
        self.rejected: list[str] = []  # reasons of refused handshakes
        self._sids = itertools.count(1)  # server-wide, so a new connection gets new sids
        self._changed = asyncio.Event()
        self._server: Server | None = None
        self.url = ""

    async def __aenter__(self) -> KalshiWsServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._check_auth,
            close_timeout=0.2,
        )
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}{self.path}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    # --- handshake ----------------------------------------------------------------------

    def _check_auth(self, connection: ServerConnection, request: Request) -> Response | None:
        headers = request.headers
        key, ts, sig = (headers.get(HEADER_KEY), headers.get(HEADER_TIMESTAMP),
                        headers.get(HEADER_SIGNATURE))
        reason = None
        if request.path.split("?", 1)[0] != self.path:
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not key or not ts or not sig:
            reason = "missing headers"
        elif self.key_id is not None and key != self.key_id:
            reason = "unknown key"
        elif not ts.isdigit():
            reason = "bad timestamp"
        elif self.now_ms is not None and abs(self.now_ms() - int(ts)) > self.max_skew_ms:
            reason = "timestamp skew"
        elif not verify_signature(self.public_key, f"{ts}GET{self.path}", sig):
            reason = "bad signature"
        if reason is not None:
            self.rejected.append(reason)
            self._poke()
            return connection.respond(HTTPStatus.UNAUTHORIZED, f"{reason}\n")
        return None

    # --- connection handler -------------------------------------------------------------

    async def _handler(self, ws: ServerConnection) -> None:
        conn = ServerConn(len(self.conns), ws, dict(ws.request.headers) if ws.request else {})
        self.conns.append(conn)
        self._poke()
        try:
            async for raw in ws:
                cmd = json.loads(raw)
                conn.commands.append(cmd)
                self._poke()
                if self.auto_ack and cmd.get("cmd") not in self.swallow:
                    await self._answer(conn, cmd)
        except ConnectionClosed:
            pass
        finally:
            conn.closed = True
            self._poke()

    async def _answer(self, conn: ServerConn, cmd: dict[str, Any]) -> None:
        cmd_id = cmd.get("id")
        name = cmd.get("cmd")
        params = cmd.get("params") or {}
        if name == "subscribe":
            channels = params.get("channels") or []
            if not channels:
                await self._error(conn, cmd_id, 3, "Channels required")
                return
            for channel in channels:
                if channel not in CHANNELS:
                    await self._error(conn, cmd_id, 8, "Unknown channel name")
                    continue
                if any(s.channel == channel for s in conn.subs.values()):
                    await self._error(conn, cmd_id, 6, "Already subscribed")
                    continue
                sub = ServerSub(next(self._sids), channel, params)
                conn.subs[sub.sid] = sub
                await self._send(conn, {"id": cmd_id, "type": "subscribed",
                                        "msg": {"channel": channel, "sid": sub.sid}})
        elif name == "unsubscribe":
            sids = params.get("sids") or []
            if not sids:
                await self._error(conn, cmd_id, 4, "Subscription IDs required")
            for sid in sids:
                found = conn.subs.pop(sid, None)
                if found is None:
                    await self._error(conn, cmd_id, 7, "Unknown subscription ID")
                else:
                    await self._send(conn, {"id": cmd_id, "sid": sid, "seq": found.next_seq(),
                                            "type": "unsubscribed"})
        elif name == "update_subscription":
            sid = params.get("sid")
            found = conn.subs.get(sid) if isinstance(sid, int) else None
            if found is None:
                await self._error(conn, cmd_id, 7, "Unknown subscription ID")
                return
            tickers = list(found.params.get("market_tickers") or [])
            action = params.get("action")
            given = params.get("market_tickers") or []
            if action == "add_markets":
                tickers += [t for t in given if t not in tickers]
            elif action == "delete_markets":
                tickers = [t for t in tickers if t not in given]
            elif action != "get_snapshot":
                await self._error(conn, cmd_id, 13, "Unsupported action")
                return
            found.params = {**found.params, "market_tickers": tickers}
            await self._send(conn, {"id": cmd_id, "sid": sid, "seq": found.next_seq(),
                                    "type": "ok", "msg": {"market_tickers": tickers}})
        elif name == "list_subscriptions":
            listed = [{"channel": s.channel, "sid": s.sid} for s in conn.subs.values()]
            await self._send(conn, {"id": cmd_id, "type": "ok", "msg": listed})
        else:
            await self._error(conn, cmd_id, 5, "Unknown command")

    async def _error(self, conn: ServerConn, cmd_id: Any, code: int, msg: str) -> None:
        await self._send(conn, {"id": cmd_id, "type": "error", "msg": {"code": code, "msg": msg}})

    async def _send(self, conn: ServerConn, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        with contextlib.suppress(ConnectionClosed):
            await conn.ws.send(text)

    def _poke(self) -> None:
        self._changed.set()

    # --- test controls ------------------------------------------------------------------

    @property
    def live(self) -> list[ServerConn]:
        """Connections still open."""
        return [c for c in self.conns if not c.closed]

    def subscribed(self, channel: str) -> list[ServerSub]:
        """Subscriptions to ``channel`` on open connections."""
        return [s for c in self.live for s in c.subs.values() if s.channel == channel]

    async def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 2.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked whenever the server changes)."""
        async with asyncio.timeout(timeout_s):
            while not (result := predicate()):
                self._changed.clear()
                try:
                    async with asyncio.timeout(0.02):
                        await self._changed.wait()
                except TimeoutError:
                    pass
            return result

    async def push(
        self, channel: str, msg_type: str, msg: dict[str, Any], *,
        skip: int = 0, with_seq: bool = True, conn: ServerConn | None = None,
    ) -> list[int]:
        """Send a data frame to every subscriber of ``channel``; ``skip`` seqs to make a gap.

        Returns the sids it was sent on.
        """
        sent = []
        for c in [conn] if conn is not None else self.live:
            for sub in list(c.subs.values()):
                if sub.channel != channel:
                    continue
                frame: dict[str, Any] = {"type": msg_type, "sid": sub.sid}
                if with_seq:
                    frame["seq"] = sub.next_seq(skip)
                frame["msg"] = msg
                await self._send(c, frame)
                sent.append(sub.sid)
        return sent

    async def send_raw(self, conn: ServerConn, text: str) -> None:
        """Send any text frame."""
        await self._send(conn, text)

    async def send_sub_error(self, sid: int, code: int, msg: str = "") -> None:
        """Send an error frame attributed to a subscription (e.g. 25 buffer overflow)."""
        for c in self.live:
            if sid in c.subs:
                await self._send(c, {"type": "error", "sid": sid, "msg": {"code": code,
                                                                           "msg": msg}})

    async def kill(self, conn: ServerConn | None = None) -> None:
        """Drop connections abruptly (TCP abort, no closing handshake)."""
        for c in [conn] if conn is not None else self.live:
            c.ws.transport.abort()

    def freeze(self, conn: ServerConn | None = None) -> None:
        """Stop reading from connections: no acks, no pongs (a half-dead peer)."""
        for c in [conn] if conn is not None else self.live:
            c.ws.transport.pause_reading()
