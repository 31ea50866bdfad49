"""Accounts of the simulated exchange: registration, keys, cash, fills and settlement booking."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from quoter.domain.money import MAX_PRICE_MICROS, notional_micros
from quoter.domain.types import BookSide, Side
from quoter.sim import wire
from quoter.sim.base import ExchangeBase
from quoter.sim.models import (
    PAYOUT_MICROS_PER_CENTI,
    Account,
    Fill,
    OutMessage,
    Position,
    Settlement,
    SimError,
    SimMarket,
    communications_id,
)

__all__ = ["AccountsMixin"]


class AccountsMixin(ExchangeBase):
    """Accounts and API keys, and what trades and settlements do to their cash and positions."""

    def register_account(self, user_id: str, *, balance_micros: int) -> None:
        """Open an account with a starting cash balance."""
        if user_id in self._accounts:
            raise SimError(409, "conflict", f"account {user_id} already exists")
        self._accounts[user_id] = Account(user_id, balance_micros, communications_id(user_id))

    def deposit(self, user_id: str, amount_micros: int) -> None:
        """Add cash to an account (negative withdraws)."""
        self._account(user_id).balance_micros += amount_micros

    def register_key(self, user_id: str, key_id: str, public_key: Any) -> None:
        """Register an API key id and its public key (cryptography object) for ``user_id``."""
        self._account(user_id)
        self._keys[key_id] = (user_id, public_key)

    def key(self, key_id: str) -> tuple[str, Any] | None:
        """``(user_id, public_key)`` registered under ``key_id``, if any."""
        return self._keys.get(key_id)

    def has_account(self, user_id: str) -> bool:
        """True if ``user_id`` has an account."""
        return user_id in self._accounts

    def positions(self, user_id: str) -> dict[str, Position]:
        """Open positions of ``user_id`` by market ticker (copies)."""
        return {t: copy.copy(p) for t, p in self._account(user_id).positions.items()
                if p.position_centi != 0 or p.total_traded_micros}

    def balance_micros(self, user_id: str) -> int:
        """Cash balance of ``user_id``."""
        return self._account(user_id).balance_micros

    def account_updated_wall_ns(self, user_id: str) -> int:
        """When the account's cash last changed (wall ns)."""
        return self._account(user_id).updated_wall_ns

    def fills(self, user_id: str) -> list[Fill]:
        """Fills of ``user_id``, oldest first."""
        return list(self._account(user_id).fills)

    def settlements(self, user_id: str) -> list[Settlement]:
        """Settlements of ``user_id``, oldest first."""
        return list(self._account(user_id).settlements)

    def users(self) -> Iterable[str]:
        """Every account's user id."""
        return tuple(self._accounts)

    def _book_fill(self, m: SimMarket, user_id: str, order_id: str, coid: str, side: Side,
                   yes_price: int, qty: int, is_taker: bool, trade_id: str, now: int) -> None:
        acct = self._accounts[user_id]
        own_price = yes_price if side == Side.YES else MAX_PRICE_MICROS - yes_price
        fee = m.fees.fee_micros(yes_price, qty, is_taker=is_taker)
        pos = acct.positions.setdefault(m.ticker, Position(m.ticker, m.exchange_index))
        cost = notional_micros(own_price, qty)
        sign = 1 if side == Side.YES else -1
        held = pos.position_centi
        if held == 0 or (held > 0) == (sign > 0):
            pos.position_centi += sign * qty
            pos.cost_micros += cost
        else:
            # Opposite side: each YES+NO pair nets out and pays $1 at once.
            pairs = min(qty, abs(held))
            closed_cost = pos.cost_micros * pairs // abs(held)
            payout = pairs * PAYOUT_MICROS_PER_CENTI
            pos.realized_pnl_micros += payout - closed_cost - notional_micros(own_price, pairs)
            pos.cost_micros -= closed_cost
            acct.balance_micros += payout
            rest = qty - pairs
            pos.position_centi += sign * qty
            if rest:
                pos.cost_micros = notional_micros(own_price, rest)
        acct.balance_micros -= cost + fee
        self.fees_collected_micros += fee
        pos.total_traded_micros += cost
        pos.fees_paid_micros += fee
        pos.volume_centi += qty
        pos.updated_wall_ns = now
        acct.updated_wall_ns = now
        fill = Fill(
            fill_id=trade_id if is_taker else self._new_id(),
            trade_id=trade_id,
            order_id=order_id,
            client_order_id=coid,
            user_id=user_id,
            market_ticker=m.ticker,
            exchange_index=m.exchange_index,
            outcome_side=side,
            book_side=BookSide.BID if side == Side.YES else BookSide.ASK,
            yes_price_micros=yes_price,
            qty_centi=qty,
            is_taker=is_taker,
            fee_micros=fee,
            post_position_centi=pos.position_centi,
            wall_ns=now,
        )
        acct.fills.append(fill)
        order = self.history.orders.get(order_id)
        if order is not None:
            order.filled_centi += qty
            order.updated_wall_ns = now
            if is_taker:
                order.taker_cost_micros += cost
                order.taker_fees_micros += fee
            else:
                order.maker_cost_micros += cost
                order.maker_fees_micros += fee
        only = frozenset({user_id})
        self._emit(OutMessage("fill", "fill", wire.fill_msg(fill), m.ticker, only))
        self._emit(OutMessage("market_positions", "market_position",
                              wire.market_position_msg(user_id, pos), m.ticker, only))

    def _book_settlements(self, m: SimMarket, result: Side) -> None:
        ticker = m.ticker
        now = self._wall()
        for acct in self._accounts.values():
            pos = acct.positions.pop(ticker, None)
            if pos is None or pos.position_centi == 0:
                continue
            held = Side.YES if pos.position_centi > 0 else Side.NO
            qty = abs(pos.position_centi)
            revenue = qty * PAYOUT_MICROS_PER_CENTI if held == result else 0
            acct.balance_micros += revenue
            acct.updated_wall_ns = now
            acct.settlements.append(
                Settlement(
                    market_ticker=ticker,
                    event_ticker=m.event_ticker,
                    exchange_index=m.exchange_index,
                    result=result,
                    yes_count_centi=qty if held == Side.YES else 0,
                    yes_cost_micros=pos.cost_micros if held == Side.YES else 0,
                    no_count_centi=qty if held == Side.NO else 0,
                    no_cost_micros=pos.cost_micros if held == Side.NO else 0,
                    revenue_micros=revenue,
                    fees_micros=pos.fees_paid_micros,
                    wall_ns=now,
                )
            )
