"""Benchmarks. `dashcache bench`: live, ttl-invalidate, matview and dashcache side by side;
`event_lag`, `reader_latency` and `metrics_overhead` measure one mechanism each (see README)."""
