"""The migration engine: plain DB-API connections (psycopg 3 or psycopg2), no Airflow imports.

A migration's steps, and the room each lives in (each room re-exports its entry points)::

    planning/  read both catalogs, resolve the mapping into per-table plans, validate their SQL
               (EXPLAIN), choose strategies, split large tables, estimate: analyze's work
    link/      build the target: create the database, apply the DDL once, link it to the source
               with postgres_fdw (setup); remove the link afterwards (cleanup)
    loading/   move one table (or key range) in one transaction: set constraints, indexes and
               triggers aside, stream COPY or INSERT ... SELECT, put them back, move sequences
               (prepare/finalize set foreign keys aside and restore them around the fan-out)
    verify/    compare source (mapping applied) and target: counts, checksums, sequences, keys
    catchup/   follow the live source after the copy (capture, apply, fence for the cutover)

    db/        beneath them all: the driver boundary (dbapi), catalog reads, the ``_confiture``
               bookkeeping schema (state), SQLSTATE names, text tables for logs
    errors.py, names.py: the shared vocabulary (error hierarchy, qualified table names)

Rooms import downwards only: ``db`` imports nothing of ours but ``errors``/``names``; ``planning``
imports ``db``; ``link``, ``loading`` and ``verify`` import ``planning`` and ``db`` (``verify`` also
``loading`` for sequence and foreign-key checks); ``catchup`` may import all of them. Inside the
engine, import modules by their full path (``core.planning.plan``), not through the rooms' façades.
"""
