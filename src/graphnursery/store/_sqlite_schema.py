"""The SQLite store's schema: its migrations, versioned with ``PRAGMA user_version``."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence

from ..errors import StoreError

log = logging.getLogger("graphnursery.store.sqlite")

#: Schema migrations; ``PRAGMA user_version`` is how many have run. Append, never edit.
#: Columns for retries, idempotency keys and leases are there for the engine to grow into.
MIGRATIONS: Sequence[str] = (
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        input TEXT NOT NULL,
        timeout REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        max_attempts INTEGER NOT NULL DEFAULT 1,
        created_at REAL NOT NULL,
        started_at REAL,
        completed_at REAL,
        run_after REAL,
        result TEXT,
        error TEXT,
        errors TEXT NOT NULL DEFAULT '[]',
        idempotency_key TEXT UNIQUE,
        lease_owner TEXT,
        lease_token TEXT,
        lease_expires_at REAL
    );
    CREATE INDEX jobs_queued ON jobs (seq) WHERE status = 'queued';
    CREATE INDEX jobs_by_status ON jobs (status, created_at, id);
    CREATE INDEX jobs_by_created ON jobs (created_at, id);
    CREATE INDEX jobs_finished ON jobs (completed_at) WHERE completed_at IS NOT NULL;
    """,
    # 2: the event log (see ._events_sql)
    """
    ALTER TABLE jobs ADD COLUMN stream_mode TEXT;
    ALTER TABLE jobs ADD COLUMN events INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN events_dropped INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE job_events (
        job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        attempt INTEGER NOT NULL,
        event TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (job_id, seq)
    );
    """,
    # 3: several graphs (each job's graph, version, schedule, a flow's run record),
    # stored flows and schedules (see .catalog)
    """
    ALTER TABLE jobs ADD COLUMN graph TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN version TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
    ALTER TABLE jobs ADD COLUMN record TEXT;
    CREATE INDEX jobs_by_graph ON jobs (graph, created_at, id);
    CREATE TABLE flows (
        name TEXT PRIMARY KEY,
        live TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE flow_versions (
        name TEXT NOT NULL REFERENCES flows (name) ON DELETE CASCADE,
        version TEXT NOT NULL,
        number INTEGER NOT NULL,
        definition TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (name, version),
        UNIQUE (name, number)
    );
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        target TEXT NOT NULL,
        cron TEXT NOT NULL,
        timezone TEXT NOT NULL,
        input TEXT NOT NULL,
        missed TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        next_fire_at REAL NOT NULL,
        last_fired_at REAL,
        last_job_id TEXT,
        fired INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 4: workspaces (each job's; every lookup of a caller's is of its workspace)
    """
    ALTER TABLE jobs ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
    CREATE INDEX jobs_by_workspace ON jobs (workspace, created_at, id);
    ALTER TABLE schedules ADD COLUMN workspace TEXT NOT NULL DEFAULT 'default';
    """,
    # 5: LangGraph threads (see .threads), and each job's thread and run options
    """
    ALTER TABLE jobs ADD COLUMN thread_id TEXT;
    ALTER TABLE jobs ADD COLUMN run_options TEXT;
    CREATE INDEX jobs_by_thread ON jobs (thread_id, created_at) WHERE thread_id IS NOT NULL;
    CREATE TABLE threads (
        thread_id TEXT PRIMARY KEY,
        workspace TEXT NOT NULL,
        metadata TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'idle',
        thread_values TEXT,
        interrupts TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX threads_by_workspace ON threads (workspace, created_at);
    """,
)


def migrate(connection: sqlite3.Connection, path: str) -> None:
    """Run the migrations the file has not had yet, each in a transaction of its own."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > len(MIGRATIONS):
        raise StoreError(
            f"{path!r} has schema version {version}, newer than this graphnursery "
            f"knows ({len(MIGRATIONS)}); upgrade graphnursery"
        )
    for number in range(version, len(MIGRATIONS)):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {number + 1}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        log.info("%s: migrated the schema to version %d", path, number + 1)
