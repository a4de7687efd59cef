"""A LangGraph chat graph for threads, with no network: its chat model (langchain-core's
GenericFakeChatModel) streams ``turn N: <what the user said>`` token by token, N counting
the user's messages in the thread's state so far.

What the user says steers it:
- ``ask``: the node asks for approval with LangGraph's ``interrupt()``; resumed with a
  value, it answers ``approved: <value>``;
- ``gate:PATH``: it waits until the file PATH exists (a test holds the run busy);
- ``crash``: its worker process dies; ``hang``: it sleeps past any test's timeout.
"""

import os
import time
from pathlib import Path

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import interrupt


def chat(state: MessagesState) -> dict:
    said = str(state["messages"][-1].content)
    if said == "crash":
        os._exit(1)
    if said == "hang":
        time.sleep(600)
    if said.startswith("gate:"):
        gate = Path(said.removeprefix("gate:"))
        for _ in range(3000):
            if gate.exists():
                break
            time.sleep(0.01)
    if said == "ask":
        reply = f"approved: {interrupt({'question': 'approve?'})}"
    else:
        turn = sum(isinstance(message, HumanMessage) for message in state["messages"])
        reply = f"turn {turn}: {said}"
    model = GenericFakeChatModel(messages=iter([AIMessage(content=reply)]))
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)
graph = builder.compile()

# The same chat, as the one node of an outer graph: its events come from a subgraph.
outer = StateGraph(MessagesState)
outer.add_node("inner", graph)
outer.add_edge(START, "inner")
outer.add_edge("inner", END)
nested = outer.compile()
