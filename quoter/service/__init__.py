"""The service shell: composition root, hooks, resync, reconcile, store, status, control."""
