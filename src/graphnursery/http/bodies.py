"""An answer's JSON text, in parts: a job's large result is passed on as the bytes the
worker encoded, in slices, never copied into the answer.

A result of :data:`LARGE_RESULT` bytes or more stands in a job's body as a
:class:`LargeResult`. :func:`encode` writes the answer around it (the result last) and
yields the result as :data:`PART`-sized memoryviews, so however many clients read a large
result at once, each holds one slice at a time beyond what the store gave it (the memory
store: nothing; SQLite and PostgreSQL: the row they read). Quart and the fast path send the
same parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

#: A result at least this large (its JSON text) is sent in parts.
LARGE_RESULT = 1 << 20
#: The slice of a large result written to the connection at a time.
PART = 1 << 20

Parts = list[bytes | memoryview]


class LargeResult:
    """A job's result JSON text, spliced into the answer as it is."""

    __slots__ = ("text",)

    def __init__(self, text: bytes) -> None:
        self.text = text


def encode(reply: Any) -> Parts:
    """The JSON text of ``reply``: one part, or a job's head then its large result in slices.

    A large result nested deeper (a page of jobs) is written whole, as a fragment.
    """
    if isinstance(reply, dict):
        result = reply.get("result")
        if isinstance(result, LargeResult):
            head = orjson.dumps({k: v for k, v in reply.items() if k != "result"})
            opening = head[:-1] + (b',"result":' if len(head) > 2 else b'"result":')
            return [opening, *_slices(result.text), b"}"]
    return [orjson.dumps(reply, default=_fragment)]


def size(parts: Parts) -> int:
    return sum(len(part) for part in parts)


def _slices(text: bytes) -> Iterator[memoryview]:
    view = memoryview(text)
    for start in range(0, len(text), PART):
        yield view[start : start + PART]


def _fragment(value: Any) -> Any:
    if isinstance(value, LargeResult):
        return orjson.Fragment(value.text)
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
