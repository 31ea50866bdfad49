"""Benchmarks run by ``make bench``: each reports absolute figures and a ratio to a baseline
measured in the same run, so results compare across machines."""
