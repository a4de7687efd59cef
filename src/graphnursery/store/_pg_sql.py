"""The PostgreSQL store's statements: its job row's select lists, and the SQL of results,
cancels and claims (the statements it shares with SQLite are :mod:`._sql`'s and, for the
event log, :mod:`._events_sql`'s)."""

from __future__ import annotations

from ._events_sql import EventLog
from ._pg_schema import EVENTS_TABLE, TABLE
from ._rows import JOB_COLUMNS
from ._sql import Dialect, Statements


def _select_list(prefix: str = "") -> str:
    """A job row's columns: the ``json`` ones (input, result) as they are, which the pool's
    connections read as bytes (``_pg_schema.JsonText``), the ``jsonb`` ones as text; orjson
    decodes them, not psycopg."""
    jsonb_columns = {"error", "errors", "stream_mode"}
    return ", ".join(
        f"{prefix}{column}::text" if column in jsonb_columns else f"{prefix}{column}"
        for column in JOB_COLUMNS
    )


COLUMNS = _select_list()
J_COLUMNS = _select_list("j.")  # in the claim's UPDATE ... FROM, where "j" is the table
STATEMENTS = Statements(
    Dialect(
        table=TABLE,
        columns=COLUMNS,
        events_table=EVENTS_TABLE,
        for_update=" FOR UPDATE",
        snapshot="SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        named="%({})s",
        mark="%s",
        json="::json",
        jsonb="::jsonb",
        appended="errors || jsonb_build_array({}::jsonb)",
        now="extract(epoch from clock_timestamp())::double precision",
    )
)
#: An event's JSON text goes in a ``text`` column, as it is.
EVENTS = EventLog(STATEMENTS.dialect, text=bytes.decode, tokens=True)
#: A result is written only under the lease it was claimed with (fencing); a job never
#: claimed (still queued) takes one without a lease.
FINISH = STATEMENTS.finish(
    "CASE WHEN %(token)s::text IS NULL THEN status = 'queued'"
    " ELSE status = 'running' AND lease_token = %(token)s::text END"
)
CANCEL = STATEMENTS.finish("status IN ('queued', 'running')")
#: The job as a finish or cancel that committed left it, for a retry of it to recognise.
ENDED_BEFORE = (
    f"SELECT {COLUMNS} FROM {TABLE} WHERE id = %(id)s AND status = %(status)s"
    " AND completed_at = %(completed_at)s"
)
NOW = "extract(epoch from clock_timestamp())::double precision"

_CLAIM_UPDATE = f"""
    UPDATE {TABLE} j SET
        status = 'running', attempts = j.attempts + 1, started_at = %(started_at)s,
        lease_owner = %(owner)s, lease_token = %(claim)s || ':' || j.seq,
        lease_expires_at = {NOW} + %(lease)s, errors = {{errors}}
    FROM picked WHERE j.seq = picked.seq
    RETURNING j.seq, j.lease_token, {J_COLUMNS}
"""
_CLAIM = (
    f"""
    WITH picked AS (
        SELECT seq FROM {TABLE} WHERE {{where}} ORDER BY seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )"""
    + _CLAIM_UPDATE
)
#: Jobs of the claiming lane's graphs (``%(graphs)s``, a text array; NULL: any graph).
_OF_GRAPHS = "(%(graphs)s::text[] IS NULL OR graph = ANY(%(graphs)s::text[]))"
_EXPIRED = f"status = 'running' AND lease_expires_at < {NOW}"
#: A job whose lease expired with no attempts left ends ``crashed`` instead of running
#: again (a job never runs more than ``max_attempts`` times); a claim runs this first, in
#: its transaction. Rows another claim has locked are skipped: that claim ends them.
CRASH_EXPIRED = f"""
    WITH exhausted AS (
        SELECT seq FROM {TABLE} WHERE {_EXPIRED} AND attempts >= max_attempts
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {TABLE} j SET
        status = 'crashed', completed_at = %(ended_at)s, error = %(no_attempts_left)s::jsonb,
        errors = j.errors || jsonb_build_array(%(no_attempts_left)s::jsonb),
        lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM exhausted WHERE j.seq = exhausted.seq
    RETURNING j.id
"""
CLAIM_EXPIRED = _CLAIM.format(
    # attempts < max_attempts too: a row CRASH_EXPIRED skipped because another claim held
    # it, and that claim rolled back, is not run past its attempts either
    where=f"{_EXPIRED} AND attempts < max_attempts AND {_OF_GRAPHS}",
    errors="j.errors || jsonb_build_array(%(lease_expired)s::jsonb)",
)
#: The jobs a claim whose commit was not acknowledged leased to this replica (its tokens
#: are the claim's id and each job's seq).
CLAIMED_BEFORE = (
    f"SELECT seq, lease_token, {COLUMNS} FROM {TABLE} WHERE status = 'running'"
    " AND lease_owner = %(owner)s AND lease_token LIKE %(claim)s || ':%%'"
)
_CLAIMABLE = f"status = 'queued' AND (run_after IS NULL OR run_after <= {NOW}) AND {_OF_GRAPHS}"
CLAIM_QUEUED = _CLAIM.format(
    # run_after: a retry waits out its backoff before any replica claims it
    where=_CLAIMABLE,
    errors="j.errors",
)
#: A fair claim: queued jobs taken round-robin between workspaces (each one's first, then
#: each one's second...), none past a workspace's max_running (its jobs running on the
#: lane's graphs, on any replica). ``%(caps)s`` names the workspaces with a cap of their own,
#: ``%(cap_values)s`` their caps, ``%(default_cap)s`` the others' (0: no cap). Run under
#: CLAIM_LOCK, so two replicas' claims do not both count the same running jobs.
CLAIM_FAIR = f"""
    WITH running AS (
        SELECT workspace, count(*) AS n FROM {TABLE}
        WHERE status = 'running' AND {_OF_GRAPHS} GROUP BY workspace
    ), caps AS (
        SELECT * FROM unnest(%(caps)s::text[], %(cap_values)s::int[]) AS c(workspace, cap)
    ), ranked AS (
        SELECT seq, workspace, row_number() OVER (PARTITION BY workspace ORDER BY seq) AS rn
        FROM {TABLE} WHERE {_CLAIMABLE}
    ), allowed AS (
        SELECT r.seq, r.rn FROM ranked r
        LEFT JOIN running u ON u.workspace = r.workspace
        LEFT JOIN caps c ON c.workspace = r.workspace
        WHERE coalesce(c.cap, %(default_cap)s) = 0
            OR r.rn + coalesce(u.n, 0) <= coalesce(c.cap, %(default_cap)s)
        ORDER BY r.rn, r.seq LIMIT %(limit)s
    ), picked AS (
        SELECT seq FROM {TABLE} WHERE seq IN (SELECT seq FROM allowed) FOR UPDATE SKIP LOCKED
    )""" + _CLAIM_UPDATE.format(errors="j.errors")
CLAIM_LOCK = "SELECT pg_advisory_xact_lock(hashtext('graphnursery.claim.' || current_schema()))"
