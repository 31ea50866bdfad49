"""The price grid of a market, from its ``price_ranges`` (kalshi-api.md §5.2).

``price_ranges`` is the source of truth: a list of bands ``{start, end, step}``; a price is
valid if it lies on some band's grid (measured from that band's start). ``price_level_structure``
is only a label, but :func:`grid_for_structure` builds the documented grid for each label so
tests, the simulator and configs can name one. $0 and $1 are never valid order prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from quoter.domain.money import MAX_PRICE_MICROS, MoneyError, check_price, parse_dollars

__all__ = ["STRUCTURES", "Band", "PriceGrid", "grid_for_structure"]


@dataclass(frozen=True, slots=True)
class Band:
    """One band of a price grid: valid prices are ``start + k*step`` within ``[start, end]``."""

    start_micros: int
    end_micros: int
    step_micros: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_micros < self.end_micros <= MAX_PRICE_MICROS:
            raise MoneyError(f"bad price band [{self.start_micros}, {self.end_micros}]")
        if self.step_micros <= 0 or self.step_micros % 100:
            # Kalshi's finest tick is $0.0001; a step below it cannot be quoted.
            raise MoneyError(f"bad price step {self.step_micros} micro-dollars")

    def floor(self, price_micros: int) -> int | None:
        """Largest on-grid price of this band <= ``price_micros``, if any."""
        top = min(price_micros, self.end_micros)
        if top < self.start_micros:
            return None
        return self.start_micros + (top - self.start_micros) // self.step_micros * self.step_micros

    def ceil(self, price_micros: int) -> int | None:
        """Smallest on-grid price of this band >= ``price_micros``, if any."""
        low = max(price_micros, self.start_micros)
        steps = -(-(low - self.start_micros) // self.step_micros)
        value = self.start_micros + steps * self.step_micros
        return value if value <= self.end_micros else None


@dataclass(frozen=True, slots=True)
class PriceGrid:
    """A market's set of valid prices."""

    bands: tuple[Band, ...]

    def __post_init__(self) -> None:
        if not self.bands:
            raise MoneyError("a price grid needs at least one band")

    @classmethod
    def from_price_ranges(cls, ranges: Iterable[Mapping[str, str]]) -> PriceGrid:
        """Build from Kalshi's ``price_ranges`` (``[{"start","end","step"}]`` dollar strings)."""
        try:
            bands = tuple(
                Band(parse_dollars(r["start"]), parse_dollars(r["end"]), parse_dollars(r["step"]))
                for r in ranges
            )
        except KeyError as exc:
            raise MoneyError(f"price range is missing {exc.args[0]!r}") from None
        return cls(tuple(sorted(bands, key=lambda b: b.start_micros)))

    def to_price_ranges(self) -> list[dict[str, str]]:
        """Render as Kalshi's ``price_ranges`` JSON shape."""
        from quoter.domain.money import format_dollars

        return [
            {
                "start": format_dollars(b.start_micros),
                "end": format_dollars(b.end_micros),
                "step": format_dollars(b.step_micros),
            }
            for b in self.bands
        ]

    def is_valid(self, price_micros: int) -> bool:
        """True if ``price_micros`` is a tradable price on this grid."""
        if not 0 < price_micros < MAX_PRICE_MICROS:
            return False
        return any(
            b.start_micros <= price_micros <= b.end_micros
            and (price_micros - b.start_micros) % b.step_micros == 0
            for b in self.bands
        )

    def check(self, price_micros: int) -> int:
        """Return ``price_micros`` if valid on this grid, else raise ``MoneyError``."""
        check_price(price_micros)
        if not self.is_valid(price_micros):
            raise MoneyError(f"price {price_micros} micro-dollars is off the market's grid")
        return price_micros

    def snap_down(self, price_micros: int) -> int:
        """Largest valid price <= ``price_micros`` (bids round down); raises if none."""
        if len(self.bands) == 1:  # most markets: no generator per snap (pricing, B6)
            best: int | None = self.bands[0].floor(min(price_micros, MAX_PRICE_MICROS - 1))
            if not best:
                raise MoneyError(f"no valid price at or below {price_micros} micro-dollars")
            return best
        best = max(
            (f for b in self.bands if (f := b.floor(min(price_micros, MAX_PRICE_MICROS - 1)))),
            default=None,
        )
        if best is None or best <= 0:
            raise MoneyError(f"no valid price at or below {price_micros} micro-dollars")
        return best

    def snap_up(self, price_micros: int) -> int:
        """Smallest valid price >= ``price_micros``; raises if none."""
        best = min(
            (c for b in self.bands if (c := b.ceil(max(price_micros, 1))) is not None),
            default=None,
        )
        if best is None or best >= MAX_PRICE_MICROS:
            raise MoneyError(f"no valid price at or above {price_micros} micro-dollars")
        return best

    @property
    def min_price_micros(self) -> int:
        """Lowest tradable price."""
        return self.snap_up(1)

    @property
    def max_price_micros(self) -> int:
        """Highest tradable price."""
        return self.snap_down(MAX_PRICE_MICROS - 1)


def _grid(*bands: tuple[str, str, str]) -> PriceGrid:
    return PriceGrid.from_price_ranges({"start": s, "end": e, "step": t} for s, e, t in bands)


def _edges(edge: str, centre: str, lo: str = "0.10", hi: str = "0.90") -> PriceGrid:
    return _grid(("0.00", lo, edge), (lo, hi, centre), (hi, "1.00", edge))


#: Every ``price_level_structure`` in kalshi-api.md §5.2, as a grid.
STRUCTURES: dict[str, PriceGrid] = {
    "linear_cent": _grid(("0.00", "1.00", "0.01")),
    "deci_cent": _grid(("0.00", "1.00", "0.001")),
    "tapered_deci_cent": _edges("0.001", "0.01"),
    "center_whole_edge_half_cent": _edges("0.005", "0.01"),
    "center_whole_edge_quint_cent": _edges("0.002", "0.01"),
    "center_half_edge_half_cent": _grid(("0.00", "1.00", "0.005")),
    "center_half_edge_quint_cent": _edges("0.002", "0.005"),
    "center_half_edge_deci_cent": _edges("0.001", "0.005"),
    "center_quint_edge_quint_cent": _grid(("0.00", "1.00", "0.002")),
    "center_quint_edge_deci_cent": _edges("0.001", "0.002"),
    "center_centi_edge_centi_cent": _grid(("0.00", "1.00", "0.0001")),
    "center_deci_edge_centi_cent": _edges("0.0001", "0.001", "0.01", "0.99"),
}


def grid_for_structure(name: str) -> PriceGrid:
    """Return the documented grid for a ``price_level_structure`` label."""
    try:
        return STRUCTURES[name]
    except KeyError:
        raise MoneyError(f"unknown price_level_structure {name!r}") from None
