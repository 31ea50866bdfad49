"""quoter.sim."""
