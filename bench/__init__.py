"""Benchmarks. `dashcache bench`: live, ttl-invalidate, matview and dashcache side by side;
`event_lag`, `reader_latency`, `metrics_overhead` and `scale` measure one mechanism each (see
README)."""
