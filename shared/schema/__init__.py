"""The app's own tables: the mapping file (`mapping`), the Core tables every query is built from
(`tables`), and the start-up check against the live database (`check`). Part of the core: every
pass reads through it; without DASHCACHE_SCHEMA_FILE it is the demo schema."""
