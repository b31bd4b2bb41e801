"""Database connections for the operators, always through ``PostgresHook`` (:mod:`hooks.connections`)."""
