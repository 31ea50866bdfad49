"""quoter.engine."""
