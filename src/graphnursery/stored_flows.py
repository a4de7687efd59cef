"""Flows kept in the store (``POST /flows``), each served as a graph of its own.

A stored flow is immutable per version: saving a changed body makes a new version (its id
is the content hash, see ``flows.flow_version``), and a *live* pointer says which version
runs; moving it back is a rollback. Each flow is served by a :class:`~graphnursery.lanes.Lane`
of its own (``flow_workers`` worker processes, its own queue), whose source is the live
version's definition written to a file of this server's: the workers load it as they load a
flow file, importing its node types, so a node type that cannot be imported refuses the
save. Moving the live pointer reloads the lane: running jobs finish on the version they
started on, queued ones run on the new live version.

With a shared store, other replicas learn of new flows and moved pointers by reading the
store every :data:`REFRESH_SECONDS` (and at once when they are asked for a flow they do
not serve yet).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import trio

from .errors import FlowInvalid, GraphConflict, GraphLoadError, GraphNotFound
from .logs import get_logger
from .sources import GraphSpec
from .store import FlowInfo, FlowVersion

if TYPE_CHECKING:
    from .engine import Engine

log = get_logger("graphnursery.flows")

#: Seconds between two reads of the stored flows, with a shared store.
REFRESH_SECONDS = 2.0


class StoredFlows:
    """The flows of the engine's store, served as lanes. Methods raise FlowInvalid,
    GraphNotFound (an unknown flow or version) and GraphConflict (a served graph's name)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store
        self._directory = Path(tempfile.mkdtemp(prefix="graphnursery-flows-"))
        self._lock = trio.Lock()  # one save or pointer move at a time, here
        self._serving: dict[str, str] = {}  # flow name -> the version its lane runs

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve every stored flow's live version, then (shared store) follow the store."""
        try:
            await self.refresh()
            task_status.started()
            if not self._store.shared:
                await trio.sleep_forever()
            while True:
                await trio.sleep(REFRESH_SECONDS)
                try:
                    await self.refresh()
                except Exception:  # the database away for now: next time
                    log.exception("reading the stored flows failed")
        finally:
            shutil.rmtree(self._directory, ignore_errors=True)

    async def refresh(self) -> None:
        """Serve the live version of every stored flow (new ones, moved pointers)."""
        for info in await self._store.list_flows():
            if self._serving.get(info.name) != info.live:
                live = await self._store.get_flow(info.name)
                if live is not None:
                    async with self._lock:
                        try:
                            await self._serve(live)
                        except GraphLoadError as exc:  # e.g. a node's package is gone
                            log.error("cannot serve a stored flow", flow=info.name, error=str(exc))

    # -- what the HTTP layer asks ------------------------------------------------------------

    async def save(self, body: Any) -> tuple[FlowVersion, bool]:
        """Validate a flow and save it, as a new version if its body changed; either way
        its version becomes live. Raises FlowInvalid (naming each node or edge at fault),
        GraphConflict when a served graph has its name."""
        from .flows import flow_version, parse_flow  # jmespath and httpx: when flows are used

        # Node types are imported by the flow's workers (a failure refuses the save), not here.
        flow = parse_flow(body, resolve=False)
        name = flow.name
        if name in self._engine.lanes and name not in self._serving:
            raise GraphConflict(name, "a graph served from the server's own sources")
        definition = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        version = flow_version(body)
        async with self._lock:
            candidate = FlowVersion(name, version, 0, definition, self._engine.clock.now(), True)
            await self._serve(candidate, refusing=True)
            saved, created = await self._store.save_flow(
                name, version, definition, candidate.created_at
            )
        log.info("flow saved", flow=name, version=version, created=created)
        return saved, created

    async def set_live(self, name: str, version: str) -> FlowVersion:
        """Move a flow's live pointer (a rollback, say) and serve that version."""
        async with self._lock:
            moved = await self._store.set_flow_live(name, version, self._engine.clock.now())
            if moved is None:
                if await self._store.get_flow(name) is None:
                    raise GraphNotFound(name)
                raise GraphNotFound(f"{name}@{version}")
            await self._serve(moved)
        log.info("flow live version moved", flow=name, version=version)
        return moved

    async def get(self, name: str, version: str | None = None) -> FlowVersion:
        found = await self._store.get_flow(name, version)
        if found is None:
            raise GraphNotFound(name if version is None else f"{name}@{version}")
        return found

    async def list_flows(self) -> list[FlowInfo]:
        return await self._store.list_flows()

    async def versions(self, name: str) -> list[FlowVersion]:
        versions = await self._store.flow_versions(name)
        if versions is None:
            raise GraphNotFound(name)
        return versions

    async def serve(self, name: str) -> None:
        """Make sure a stored flow is served here (another replica may have saved it).
        Raises GraphNotFound when there is no such flow."""
        if name not in self._serving:
            await self.refresh()
        if name not in self._serving:
            raise GraphNotFound(name)

    # -- serving -----------------------------------------------------------------------------

    async def _serve(self, flow: FlowVersion, *, refusing: bool = False) -> None:
        """Run ``flow`` on its lane (made if need be). Raises GraphLoadError (as FlowInvalid
        when ``refusing``: a save is refused) if its workers cannot load it."""
        if self._serving.get(flow.name) == flow.version:
            return
        path = self._directory / f"{flow.name}-{flow.version}.json"
        await trio.Path(path).write_bytes(flow.definition)
        spec = GraphSpec(flow.name, str(path))
        try:
            lane = self._engine.lanes.get(flow.name)
            if lane is None:
                config = self._engine.config
                flow_config = config.replace(graph=str(path), workers=config.flow_workers)
                await self._engine.add_lane(spec, flow_config)
            else:
                await lane.reload(spec)
        except GraphLoadError as exc:
            if refusing:
                problems = exc.problems or [{"flow": flow.name, "problem": exc.message}]
                raise FlowInvalid(problems) from None
            raise
        self._serving[flow.name] = flow.version
