"""Making model calls: the caller (cache modes, call log, budget), retries, adaptive rate
limits, prices and the provider registry. Nothing here knows about pytest's runner."""
