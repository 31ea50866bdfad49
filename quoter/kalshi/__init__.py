"""quoter.kalshi."""
