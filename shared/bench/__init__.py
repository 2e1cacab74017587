"""`dashcache bench`: live, ttl-invalidate, matview and dashcache side by side (see README)."""
