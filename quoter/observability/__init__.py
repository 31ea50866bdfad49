"""quoter.observability."""
