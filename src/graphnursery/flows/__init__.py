"""Flows: graphs written as JSON data, validated by :func:`parse_flow` and run by
:func:`run_flow`. A node's ``type`` is ``http``, ``graph`` or an import string naming a
function ``f(input)`` or ``f(input, config)``, sync or ``async``::

    >>> from graphnursery.flows import parse_flow, run_flow_sync
    >>> flow = parse_flow({
    ...     "name": "demo",
    ...     "nodes": [{"id": "neg", "type": "operator:neg"},
    ...               {"id": "big", "type": "operator:abs"},
    ...               {"id": "small", "type": "operator:neg"}],
    ...     "edges": [{"from": "neg", "to": "big", "condition": "@ < `-10`"},
    ...               {"from": "neg", "to": "small", "condition": "@ >= `-10`"}],
    ... })
    >>> run = run_flow_sync(flow, 3)
    >>> run.output, run.record["nodes"]["big"]["status"]
    (3, 'skipped')

This package runs inside worker processes: it imports neither Trio nor Quart.
"""

from __future__ import annotations

from .model import BUILTIN_TYPES, Edge, Flow, Node, flow_version
from .parse import parse_flow
from .run import FlowFailed, FlowRun, run_flow, run_flow_sync

__all__ = [
    "BUILTIN_TYPES",
    "Edge",
    "Flow",
    "FlowFailed",
    "FlowRun",
    "Node",
    "flow_version",
    "parse_flow",
    "run_flow",
    "run_flow_sync",
]
