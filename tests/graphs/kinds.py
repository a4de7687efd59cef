"""One graph of each kind graphnursery accepts, and results of each JSON-convertible type."""

import asyncio
import dataclasses

from pydantic import BaseModel


def plain(input):
    return {"kind": "plain", "input": input}


async def coroutine(input):
    await asyncio.sleep(0)
    return {"kind": "async", "loop_id": id(asyncio.get_running_loop())}


class Invokable:
    def invoke(self, input):
        return {"kind": "invoke", "input": input}


class AsyncInvokable:
    async def ainvoke(self, input):
        return {"kind": "ainvoke", "input": input}


class Executable:
    def execute(self, input):
        return {"kind": "execute", "input": input}


invokable = Invokable()
ainvokable = AsyncInvokable()
executable = Executable()


class Answer(BaseModel):
    text: str
    score: float


@dataclasses.dataclass
class Point:
    x: int
    y: int


def pydantic_result(input):
    return Answer(text="hi", score=0.5)


def dataclass_result(input):
    return Point(1, 2)


def tuple_result(input):
    return (1, "two", None)


def mixed_result(input):
    return {"answer": Answer(text="hi", score=0.5), "points": [Point(1, 2)], 1: "one"}


def enum_and_uuid_result(input):
    import enum
    import uuid

    class Colour(enum.Enum):
        RED = "red"

    return {"colour": Colour.RED, "id": uuid.UUID(int=1)}


def datetime_result(input):
    import datetime

    return {"at": datetime.datetime(2026, 1, 1)}


def object_result(input):
    return object()


def create_graph():
    return Executable()
