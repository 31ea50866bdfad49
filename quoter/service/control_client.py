"""Client of the running service's control API (``quoter halt | resume | cancel-all | status``).

Talks to ``quoter.service.http`` on the loopback port with the bearer token from
``QUOTER_CONTROL_TOKEN`` or the token file the service wrote (mode 0600). Synchronous: it is
used by one-shot CLI commands.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from quoter.errors import AuthError, QuoterError, TransportError
from quoter.service.environment import ControlSettings, is_loopback

__all__ = ["ControlClient", "ControlError"]


class ControlError(QuoterError):
    """The control API answered with an error."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"control API error {status_code}: {message}")
        self.status_code = status_code


class ControlClient:
    """Send halt / resume / cancel-all / status to a running quoter."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        host = httpx.URL(base_url).host
        if not is_loopback(host):
            raise ValueError(f"the control API is loopback-only, not {host!r}")
        self._base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = timeout_s
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: ControlSettings, *, timeout_s: float = 5.0) -> ControlClient:
        """Build a client from ``QUOTER_CONTROL_*`` settings and the token file."""
        return cls(settings.base_url, settings.token(), timeout_s=timeout_s)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        try:
            with httpx.Client(
                base_url=self._base_url, timeout=self._timeout_s, transport=self._transport
            ) as client:
                response = client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            # Say where, never what headers: the token is in them.
            raise TransportError(
                f"no quoter control API answering at {self._base_url} ({type(exc).__name__})"
            ) from None
        if response.status_code == 401:
            raise AuthError("the control API rejected the token (stale token file?)")
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text[:200]}
        if response.status_code != 200:
            message = payload.get("error", "") if isinstance(payload, dict) else str(payload)
            raise ControlError(response.status_code, str(message))
        return payload

    def halt(self, reason: str = "operator") -> dict[str, Any]:
        """Halt quoting (open quotes are pulled by the service)."""
        result: dict[str, Any] = self._request("POST", "/control/halt", {"reason": reason})
        return result

    def resume(self) -> dict[str, Any]:
        """Resume quoting."""
        result: dict[str, Any] = self._request("POST", "/control/resume")
        return result

    def cancel_all(self) -> dict[str, Any]:
        """Cancel every open quote (quoting continues unless halted)."""
        result: dict[str, Any] = self._request("POST", "/control/cancel-all")
        return result

    def status(self) -> dict[str, Any]:
        """Return the service's status document."""
        result: dict[str, Any] = self._request("GET", "/control/status")
        return result
