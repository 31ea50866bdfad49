"""The runtime: the pure kernel, the async driver, the pricing pool and the pre-filter."""
