"""dashcache: keeps an email app's dashboard statistics warm in Redis.

What the worker and the web processes share. Readers start at `dashcache.reader`.
"""
