"""A LangGraph thread's runs and state, in the worker process: LangGraph's own checkpointers.

A thread's state is LangGraph checkpoints, written by the checkpointer packages LangGraph
ships: ``langgraph-checkpoint-sqlite`` (``sqlite:PATH``: beside a SQLite store, or a
temporary file for the memory store) or ``langgraph-checkpoint-postgres``
(``postgres:CONNINFO``: the PostgreSQL store's database). Each worker process opens its own
connection once, so any worker (or replica) continues any thread. A graph compiled with a
checkpointer of its own keeps it.

A run's options (``run``) are what the LangGraph API's request said of it: ``thread_id``,
``run_id``, ``config``, ``context``, ``command``, ``interrupt_before`` / ``interrupt_after``,
``checkpoint`` / ``checkpoint_id``, ``stream_subgraphs`` and the assistant's ``graph_id``.

No Trio, no Quart: this runs in the worker processes (``_worker``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson

from ._results import encode_result
from ._streaming import INTERRUPT, stream_langgraph

_saver: Any = None
_where = ""
#: Graphs given this process's checkpointer (by ``id`` of the graph they copy).
_bound: dict[int, Any] = {}


def checkpointer(where: str) -> Any:
    """This process's checkpointer at ``where``, opened on first use."""
    global _saver, _where
    if _saver is not None and _where == where:
        return _saver
    kind, _, target = where.partition(":")
    if kind == "sqlite":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        connection = sqlite3.connect(target, check_same_thread=False, timeout=30)
        _saver = SqliteSaver(connection)
    elif kind == "postgres":
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        conn = psycopg.connect(target, autocommit=True, prepare_threshold=0, row_factory=dict_row)
        _saver = PostgresSaver(conn)
    else:
        raise RuntimeError("this server keeps no thread state: it has no checkpointer")
    _where = where
    _bound.clear()
    return _saver


def forget_checkpointer() -> None:
    """Drop the connection (after a database error): the next run opens a new one."""
    global _saver
    saver, _saver = _saver, None
    _bound.clear()
    with contextlib.suppress(Exception):
        getattr(saver, "conn", None).close()  # type: ignore[union-attr]


def prepare(where: str) -> None:
    """Create the checkpointer's tables (once per server start; replicas starting at once
    take turns, under an advisory lock, in PostgreSQL)."""
    saver = checkpointer(where)
    if where.startswith("postgres:"):
        with saver.conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(hashtext('graphnursery.checkpoints'))")
            try:
                saver.setup()
            finally:
                cursor.execute("SELECT pg_advisory_unlock(hashtext('graphnursery.checkpoints'))")
    else:
        saver.setup()


def bound(graph: Any, where: str) -> Any:
    """``graph`` with this process's checkpointer, unless it was compiled with its own."""
    own = getattr(graph, "checkpointer", None)
    if own not in (None, True, False):
        return graph
    copy = _bound.get(id(graph))
    if copy is None:
        copy = _bound[id(graph)] = graph.copy(update={"checkpointer": checkpointer(where)})
    return copy


def run_config(run: Mapping[str, Any]) -> dict[str, Any]:
    """The LangGraph config of a run: the request's, with its thread and checkpoint."""
    config = dict(run.get("config") or {})
    configurable = dict(config.get("configurable") or {})
    if run.get("thread_id"):
        configurable["thread_id"] = run["thread_id"]
    checkpoint = run.get("checkpoint") or {}
    configurable.update({k: v for k, v in checkpoint.items() if k != "thread_id"})
    if run.get("checkpoint_id"):
        configurable["checkpoint_id"] = run["checkpoint_id"]
    config["configurable"] = configurable
    metadata = dict(config.get("metadata") or {})
    for key in ("run_id", "thread_id", "graph_id", "assistant_id"):
        if run.get(key):
            metadata.setdefault(key, run[key])
    config["metadata"] = metadata
    return config


def run_input(job_input: Any, run: Mapping[str, Any]) -> Any:
    """What the graph is called with: a ``Command`` when the run has one (resume an
    interrupt, update the state, go to nodes), else the input."""
    command = run.get("command")
    if not command:
        return job_input
    from langgraph.types import Command

    return Command(
        update=command.get("update"), resume=command.get("resume"), goto=command.get("goto") or ()
    )


def caller(
    graph: Any, wanted: list[str], run: Mapping[str, Any], where: str
) -> Callable[[Any], Any]:
    """Call ``graph`` as a run of the LangGraph API: on its thread's checkpoints when it
    has a thread, streaming ``wanted`` modes; its result is the state it ends in, with
    ``__interrupt__`` when it stopped at interrupts (or a breakpoint)."""

    def call(job_input: Any) -> Any:
        with _database_errors():
            target = bound(graph, where) if run.get("thread_id") else graph
            config = run_config(run)
            options = {
                "config": config,
                "interrupt_before": run.get("interrupt_before"),
                "interrupt_after": run.get("interrupt_after"),
                "subgraphs": bool(run.get("stream_subgraphs")),
            }
            if run.get("context") is not None:
                options["context"] = run["context"]
            latest = stream_langgraph(target, run_input(job_input, run), wanted, options)
            if not run.get("thread_id") or target.checkpointer is None:
                return latest
            return _final_state(target, config)

    return call


def _final_state(graph: Any, config: dict[str, Any]) -> Any:
    state = graph.get_state({"configurable": {"thread_id": config["configurable"]["thread_id"]}})
    values = state.values
    interrupts = [interrupt_body(item) for item in state.interrupts]
    if not (state.next or interrupts):
        return values
    base = values if isinstance(values, dict) else {}
    return {**base, INTERRUPT: interrupts}


def interrupt_body(interrupt: Any) -> dict[str, Any]:
    return {"value": getattr(interrupt, "value", None), "id": str(getattr(interrupt, "id", ""))}


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    """A database error drops the connection, so the next call opens a fresh one."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.startswith(("psycopg", "sqlite3")):
            forget_checkpointer()
        raise


# -- thread state (GET/POST /threads/{id}/state, history) ----------------------------------


def thread_op(graph: Any, where: str, op: str, args: Mapping[str, Any]) -> bytes:
    """One read or change of a thread's state, as the LangGraph API answers it (JSON); or
    what the graph is (``graph``: its nodes and edges; ``schemas``: its JSON schemas)."""
    if op in ("graph", "schemas"):
        return describe(graph, op, args)
    with _database_errors():
        target = bound(graph, where)
        config: dict[str, Any] = {"configurable": {"thread_id": args["thread_id"]}}
        checkpoint = args.get("checkpoint") or {}
        config["configurable"].update({k: v for k, v in checkpoint.items() if v is not None})
        if op == "state":
            snapshot = target.get_state(config, subgraphs=bool(args.get("subgraphs")))
            return encode_result(snapshot_body(snapshot))
        if op == "update":
            updated = target.update_state(config, args.get("values"), as_node=args.get("as_node"))
            return orjson.dumps({"checkpoint": checkpoint_body(updated)})
        if op == "history":
            before = args.get("before")
            history = target.get_state_history(
                config,
                filter=args.get("metadata") or None,
                before={"configurable": before} if before else None,
                limit=args.get("limit") or 10,
            )
            return encode_result([snapshot_body(snapshot) for snapshot in history])
        if op == "delete":
            checkpointer(where).delete_thread(args["thread_id"])
            return b"null"
        if op == "rollback":
            return orjson.dumps(_delete_runs(where, args["thread_id"], args["run_ids"]))
        raise ValueError(f"unknown thread operation {op!r}")


def describe(graph: Any, op: str, args: Mapping[str, Any]) -> bytes:
    """``GET /assistants/{id}/graph`` and ``/schemas``: as LangGraph's server draws them."""
    if op == "graph":
        xray = args.get("xray", False)
        return orjson.dumps(graph.get_graph(xray=xray).to_json(), default=repr)
    schemas = {
        "graph_id": args.get("graph_id"),
        "input_schema": graph.get_input_jsonschema(),
        "output_schema": graph.get_output_jsonschema(),
        "state_schema": graph.get_output_jsonschema(),  # a StateGraph's output is its state
        "config_schema": graph.get_config_jsonschema(),
        "context_schema": graph.get_context_jsonschema(),
    }
    return orjson.dumps(schemas, default=repr)


def _delete_runs(where: str, thread_id: str, run_ids: list[str]) -> int:
    """Delete the checkpoints (and their writes) that runs wrote to a thread (a rollback):
    each checkpoint's metadata has the ``run_id`` of the run that wrote it. LangGraph's
    savers have no call for it (``delete_for_runs`` is not implemented), so this is SQL on
    their tables. How many checkpoints went."""
    saver = checkpointer(where)
    if not run_ids:
        return 0
    if where.startswith("postgres:"):
        with saver.conn.transaction():
            rows = saver.conn.execute(
                "DELETE FROM checkpoints WHERE thread_id = %s AND metadata->>'run_id' = ANY(%s)"
                " RETURNING checkpoint_id",
                (thread_id, run_ids),
            ).fetchall()
            ids = [row["checkpoint_id"] for row in rows]
            saver.conn.execute(
                "DELETE FROM checkpoint_writes WHERE thread_id = %s AND checkpoint_id = ANY(%s)",
                (thread_id, ids),
            )
        return len(ids)
    marks = ", ".join("?" * len(run_ids))
    with saver.lock, saver.conn:
        ids = [
            row[0]
            for row in saver.conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND"
                f" json_extract(CAST(metadata AS TEXT), '$.run_id') IN ({marks})",
                (thread_id, *run_ids),
            )
        ]
        for checkpoint_id in ids:
            for table in ("writes", "checkpoints"):
                saver.conn.execute(
                    f"DELETE FROM {table} WHERE thread_id = ? AND checkpoint_id = ?",
                    (thread_id, checkpoint_id),
                )
    return len(ids)


def checkpoint_body(config: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {
        "thread_id": configurable.get("thread_id"),
        "checkpoint_ns": configurable.get("checkpoint_ns", ""),
        "checkpoint_id": configurable.get("checkpoint_id"),
        "checkpoint_map": configurable.get("checkpoint_map"),
    }


def snapshot_body(snapshot: Any) -> dict[str, Any]:
    """A ``StateSnapshot`` as LangGraph's API writes a thread state."""
    return {
        "values": snapshot.values,
        "next": list(snapshot.next),
        "checkpoint": checkpoint_body(snapshot.config),
        "metadata": snapshot.metadata,
        "created_at": snapshot.created_at,
        "parent_checkpoint": checkpoint_body(snapshot.parent_config),
        "tasks": [
            {
                "id": task.id,
                "name": task.name,
                "error": None if task.error is None else repr(task.error),
                "interrupts": [interrupt_body(item) for item in task.interrupts],
                "checkpoint": None,
                "state": snapshot_body(task.state) if hasattr(task.state, "values") else None,
                "result": getattr(task, "result", None),
            }
            for task in snapshot.tasks
        ],
        "interrupts": [interrupt_body(item) for item in snapshot.interrupts],
    }
