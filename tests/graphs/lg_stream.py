"""A LangGraph graph whose chat model streams its reply token by token, with no network
(langchain-core's GenericFakeChatModel), and whose node writes a custom event.

Input: {"messages": [{"role": "user", "content": ...}]}; the model answers REPLY.
"""

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, MessagesState, StateGraph

REPLY = "tokens stream one by one"


def chat(state: MessagesState) -> dict:
    get_stream_writer()({"progress": "thinking"})
    model = GenericFakeChatModel(messages=iter([AIMessage(content=REPLY)]))
    return {"messages": [model.invoke(state["messages"])]}


builder = StateGraph(MessagesState)
builder.add_node("chat", chat)
builder.add_edge(START, "chat")
builder.add_edge("chat", END)
graph = builder.compile()
