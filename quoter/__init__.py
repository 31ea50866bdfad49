"""quoter: an automated RFQ market maker for Kalshi."""

__version__ = "0.1.0"
