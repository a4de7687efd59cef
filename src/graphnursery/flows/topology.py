"""Graph algorithms on node ids: topological order, cycles, reachability. Iterative, so a
long chain does not hit the recursion limit."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence


def topological_order(
    ids: Sequence[str], downstream: Mapping[str, Sequence[str]]
) -> list[str] | None:
    """Kahn's algorithm, taking ready nodes in ``ids`` order; None if there is a cycle."""
    indegree = dict.fromkeys(ids, 0)
    for targets in downstream.values():
        for target in targets:
            indegree[target] += 1
    position = {node_id: n for n, node_id in enumerate(ids)}
    ready = [node_id for node_id in ids if not indegree[node_id]]
    order: list[str] = []
    while ready:
        ready.sort(key=position.__getitem__, reverse=True)
        node_id = ready.pop()
        order.append(node_id)
        for target in downstream[node_id]:
            indegree[target] -= 1
            if not indegree[target]:
                ready.append(target)
    return order if len(order) == len(ids) else None


def cycles(ids: Sequence[str], downstream: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, as a path that starts and
    ends at the component's first node in ``ids`` order: ``["b", "c", "b"]``."""
    found: list[list[str]] = []
    position = {node_id: n for n, node_id in enumerate(ids)}
    for component in _components(ids, downstream):
        first = min(component, key=position.__getitem__)
        if len(component) == 1 and first not in downstream[first]:
            continue
        found.append(_path_back(first, component, downstream))
    found.sort(key=lambda path: position[path[0]])
    return found


def unreachable(
    ids: Sequence[str], roots: Sequence[str], downstream: Mapping[str, Sequence[str]]
) -> list[str]:
    """The nodes no path from a root reaches (in a DAG there are none: they hang off a
    cycle)."""
    seen = set(roots)
    queue = deque(roots)
    while queue:
        for target in downstream[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return [node_id for node_id in ids if node_id not in seen]


def _path_back(
    start: str, component: set[str], downstream: Mapping[str, Sequence[str]]
) -> list[str]:
    """The shortest path start -> ... -> start inside ``component`` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node_id = queue.popleft()
        for target in downstream[node_id]:
            if target == start:
                chain = [node_id]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [*reversed(chain), start]
            if target in component and target not in came_from:
                came_from[target] = node_id
                queue.append(target)
    raise AssertionError(f"{start!r} is on no cycle of its component")


def _components(ids: Sequence[str], downstream: Mapping[str, Sequence[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, without recursion."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    for root in ids:
        if root in index:
            continue
        work = [(root, iter(downstream[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node_id, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(downstream[target])))
                    break
                if target in on_stack:
                    low[node_id] = min(low[node_id], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node_id])
                if low[node_id] == index[node_id]:
                    component: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node_id:
                            break
                    components.append(component)
    return components
