"""The fault-injection hooks the simulator's server calls (implemented in ``quoter.sim.faults``).

The server asks the injector about every outbound WebSocket frame and every REST request:

* ``on_frame(conn_id, text)`` returns the frames to actually send, each with a delay in
  seconds: ``[]`` drops the frame, two entries duplicate it, a changed text corrupts it.
* ``await on_request(method, path)`` may sleep (added latency) and returns a response to
  send instead of handling the request (a 5xx or 429 burst), or ``None`` to proceed.
* optional: ``await lose_confirm_response()`` after a confirm is applied (a response to
  send instead of its 204, or None), ``corrupt_response(method, path, response)`` after a
  request was handled (the response to send: its body possibly spoiled),
  ``should_close(conn_id)`` (cut this connection now? checked before each frame and by a
  watchdog), ``on_connect(conn_id)`` /
  ``on_disconnect(conn_id)`` (socket bookkeeping).
  The server looks these up with ``getattr`` so a minimal injector may omit them.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from starlette.responses import Response

__all__ = ["FaultHooks", "NoFaults"]


@runtime_checkable
class FaultHooks(Protocol):
    """What the server needs from a fault injector."""

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        """Frames to send for ``text`` on connection ``conn_id``, each with a delay (s)."""
        ...

    async def on_request(self, method: str, path: str) -> Response | None:
        """A response to inject instead of handling the request, or None to proceed."""
        ...


class NoFaults:
    """The default: deliver everything, at once, unchanged."""

    def on_frame(self, conn_id: str, text: str) -> list[tuple[float, str]]:
        """Send the frame as is."""
        return [(0.0, text)]

    async def on_request(self, method: str, path: str) -> Response | None:
        """Never interfere."""
        return None

    def should_close(self, conn_id: str) -> bool:
        """Never cut a connection."""
        return False

    def quote_response_hold_s(self) -> float:
        """Never hold a create-quote response."""
        return 0.0

    async def lose_confirm_response(self) -> Response | None:
        """Never lose a confirm's response."""
        return None

    def corrupt_response(self, method: str, path: str, response: Response) -> Response:
        """Never spoil a body."""
        return response

    def on_connect(self, conn_id: str) -> None:
        """Nothing to record."""

    def on_disconnect(self, conn_id: str) -> None:
        """Nothing to record."""
