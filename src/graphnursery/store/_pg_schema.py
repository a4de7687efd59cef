"""The PostgreSQL store's tables: their migrations, and opening a pool on them.

Migrations run under an advisory lock, so replicas starting at once migrate once;
``graphnursery_schema_version`` records how many ran. Tables live in the connection's
current schema, and so does the ``NOTIFY`` channel's name.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import StoreError

log = logging.getLogger("graphnursery.store.postgres")

Connection = psycopg.Connection[Any]

TABLE = "graphnursery_jobs"
EVENTS_TABLE = "graphnursery_job_events"
FLOWS_TABLE = "graphnursery_flows"
FLOW_VERSIONS_TABLE = "graphnursery_flow_versions"
SCHEDULES_TABLE = "graphnursery_schedules"
THREADS_TABLE = "graphnursery_threads"

#: Schema migrations, in order; ``graphnursery_schema_version`` says how many ran.
MIGRATIONS: Sequence[str] = (
    f"""
    CREATE TABLE {TABLE} (
        seq bigserial PRIMARY KEY,
        id text NOT NULL UNIQUE,
        status text NOT NULL,
        input json NOT NULL,
        timeout double precision NOT NULL,
        attempts integer NOT NULL DEFAULT 0,
        max_attempts integer NOT NULL DEFAULT 1,
        created_at double precision NOT NULL,
        started_at double precision,
        completed_at double precision,
        run_after double precision,
        result json,
        error jsonb,
        errors jsonb NOT NULL DEFAULT '[]',
        idempotency_key text UNIQUE,
        lease_owner text,
        lease_token text,
        lease_expires_at double precision
    );
    CREATE INDEX {TABLE}_queued ON {TABLE} (seq) WHERE status = 'queued';
    CREATE INDEX {TABLE}_leases ON {TABLE} (lease_expires_at) WHERE status = 'running';
    CREATE INDEX {TABLE}_by_status ON {TABLE} (status, created_at, id);
    CREATE INDEX {TABLE}_by_created ON {TABLE} (created_at, id);
    CREATE INDEX {TABLE}_finished ON {TABLE} (completed_at) WHERE completed_at IS NOT NULL;
    """,
    # 2: the event log (see ._events_sql). The new columns have defaults: a replica still
    # running the code before it keeps inserting jobs, and its deletes take their events.
    f"""
    ALTER TABLE {TABLE} ADD COLUMN stream_mode jsonb,
        ADD COLUMN events integer NOT NULL DEFAULT 0,
        ADD COLUMN events_dropped integer NOT NULL DEFAULT 0;
    CREATE TABLE {EVENTS_TABLE} (
        job_id text NOT NULL REFERENCES {TABLE} (id) ON DELETE CASCADE,
        seq integer NOT NULL,
        attempt integer NOT NULL,
        event text NOT NULL,
        data text NOT NULL,
        append_id bigint,
        PRIMARY KEY (job_id, seq)
    );
    """,
    # 3: several graphs (each job's graph, version, schedule, a flow's run record),
    # stored flows and schedules (see .catalog). Defaults again, for older replicas.
    f"""
    ALTER TABLE {TABLE} ADD COLUMN graph text NOT NULL DEFAULT '',
        ADD COLUMN version text NOT NULL DEFAULT '',
        ADD COLUMN schedule_id text,
        ADD COLUMN record json;
    CREATE INDEX {TABLE}_by_graph ON {TABLE} (graph, created_at, id);
    CREATE INDEX {TABLE}_queued_by_graph ON {TABLE} (graph, seq) WHERE status = 'queued';
    CREATE TABLE {FLOWS_TABLE} (
        name text PRIMARY KEY,
        live text NOT NULL,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE TABLE {FLOW_VERSIONS_TABLE} (
        name text NOT NULL REFERENCES {FLOWS_TABLE} (name) ON DELETE CASCADE,
        version text NOT NULL,
        number integer NOT NULL,
        definition text NOT NULL,
        created_at double precision NOT NULL,
        PRIMARY KEY (name, version),
        UNIQUE (name, number)
    );
    CREATE TABLE {SCHEDULES_TABLE} (
        id text PRIMARY KEY,
        target text NOT NULL,
        cron text NOT NULL,
        timezone text NOT NULL,
        input text NOT NULL,
        missed text NOT NULL,
        paused integer NOT NULL DEFAULT 0,
        next_fire_at double precision NOT NULL,
        last_fired_at double precision,
        last_job_id text,
        fired integer NOT NULL DEFAULT 0,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    """,
    # 4: workspaces (each job's; every lookup of a caller's is of its workspace)
    f"""
    ALTER TABLE {TABLE} ADD COLUMN workspace text NOT NULL DEFAULT 'default';
    CREATE INDEX {TABLE}_by_workspace ON {TABLE} (workspace, created_at, id);
    ALTER TABLE {SCHEDULES_TABLE} ADD COLUMN workspace text NOT NULL DEFAULT 'default';
    """,
    # 5: LangGraph threads (see .threads), and each job's thread and run options
    f"""
    ALTER TABLE {TABLE} ADD COLUMN thread_id text, ADD COLUMN run_options json;
    CREATE INDEX {TABLE}_by_thread ON {TABLE} (thread_id, created_at)
        WHERE thread_id IS NOT NULL;
    CREATE TABLE {THREADS_TABLE} (
        thread_id text PRIMARY KEY,
        workspace text NOT NULL,
        metadata jsonb NOT NULL,
        status text NOT NULL DEFAULT 'idle',
        thread_values json,
        interrupts json NOT NULL DEFAULT '{{}}',
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL
    );
    CREATE INDEX {THREADS_TABLE}_by_workspace ON {THREADS_TABLE} (workspace, created_at);
    """,
)


def describe(conninfo: str) -> str:
    """Where a connection string points, without its password."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured database"
    host = parts.get("host", "localhost")
    return f"{parts.get('user', '')}@{host}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


class JsonText(Loader):
    """Reads a ``json`` column as its text, in bytes: a result is passed on as it is."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def read_json_as_text(connection: Connection) -> None:
    """How every connection of the store is set up (the pool's, and one made beside it)."""
    connection.adapters.register_loader("json", JsonText)


def open_pool(conninfo: str, max_size: int) -> tuple[ConnectionPool[Connection], str]:
    """A pool of up to ``max_size`` connections on a migrated database, and the name of
    the ``NOTIFY`` channel of its schema. Blocks: call it on a thread.

    Raises :class:`StoreError` saying where, if the database cannot be reached or prepared.
    """
    where = describe(conninfo)
    try:  # one plain connection first, for the server's own words if it fails
        psycopg.connect(conninfo, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {exc}") from None
    pool: ConnectionPool[Connection] = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        open=False,
        name="graphnursery",
        configure=read_json_as_text,
        # No check= on taking a connection: a failed check waits ~1 s before the next one,
        # while an operation that finds its connection dead is retried after 0.1 s (see
        # _pg_retry), and the pool replaces the dead connection when it comes back.
    )
    try:
        pool.open(wait=True, timeout=10)
    except PoolTimeout as exc:
        pool.close()
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {exc}") from None
    try:
        with pool.connection() as connection:
            migrate(connection)
            row = connection.execute("SELECT current_schema()").fetchone()
    except psycopg.Error as exc:
        pool.close()
        raise StoreError(f"cannot prepare the tables in PostgreSQL at {where}: {exc}") from None
    except BaseException:
        pool.close()
        raise
    schema = "" if row is None else str(row[0])
    # NOTIFY channels are per database: one per schema keeps deployments (and tests) apart.
    return pool, "graphnursery_" + hashlib.sha1(schema.encode()).hexdigest()[:16]


def migrate(connection: Connection) -> None:
    """Run the migrations the database has not had yet, in one transaction."""
    with connection.transaction():
        connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext('graphnursery.migrate.' || current_schema()))"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS graphnursery_schema_version (version integer NOT NULL)"
        )
        row = connection.execute(
            "SELECT coalesce(max(version), 0) FROM graphnursery_schema_version"
        ).fetchone()
        version = 0 if row is None else int(row[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the database has graphnursery schema version {version}, newer than this "
                f"graphnursery knows ({len(MIGRATIONS)}); upgrade graphnursery"
            )
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(
                "INSERT INTO graphnursery_schema_version (version) VALUES (%s)", (number + 1,)
            )
            log.info("migrated the PostgreSQL schema to version %d", number + 1)
