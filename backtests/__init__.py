"""Backtesting on recorded WebSocket frames through the production engine."""
