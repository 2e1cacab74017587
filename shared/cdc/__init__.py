"""Change data capture: every committed change of the mapped tables, from PostgreSQL's WAL."""
