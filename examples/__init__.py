"""Runnable examples of dashcache inside a host application."""
