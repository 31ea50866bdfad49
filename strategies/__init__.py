"""Pricing modules: the ``Pricer`` / ``Overlay`` protocols, the registry and the built-ins.

Imports only ``quoter.domain`` (and pydantic for parameter models).
"""
