"""A real LangGraph StateGraph with no LLM: a 'respond' node answers the last user message.

Needs the optional extra: pip install 'graphnursery[langgraph]'

    graphnursery serve examples/langgraph_chat.py
    curl -s localhost:8000/execute -H 'content-type: application/json' \\
         -d '{"messages": [{"role": "user", "content": "hello"}]}'

The compiled graph has .invoke(), which graphnursery calls with the job's input
(`{messages, data, metadata}` for the seed route). `create_graph()` runs once per worker.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph


class ChatState(TypedDict, total=False):
    messages: Annotated[list[dict[str, Any]], operator.add]
    data: dict[str, Any]
    metadata: dict[str, Any]
    turns: int


def respond(state: ChatState) -> dict[str, Any]:
    last = state["messages"][-1]["content"] if state.get("messages") else ""
    reply = {"role": "assistant", "content": f"You said: {last}"}
    return {"messages": [reply], "turns": len(state.get("messages", [])) + 1}


def create_graph() -> Any:
    builder = StateGraph(ChatState)
    builder.add_node("respond", respond)
    builder.add_edge(START, "respond")
    builder.add_edge("respond", END)
    return builder.compile()
