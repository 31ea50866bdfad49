"""The domain: exact money, price grids, fees, and the events and commands of the engine.

Imports nothing that does IO; every other layer depends on it.
"""
