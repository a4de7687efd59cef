"""Generator graphs: each yield is streamed as a ``values`` event.

graph  a sync generator: yields {"step": i} for each of input["steps"], returns {"done": n}
agen   an async generator: yields the same; its result is its last yield
"""

import asyncio


def graph(input):
    for i in range(input["steps"]):
        yield {"step": i}
    return {"done": input["steps"]}


async def agen(input):
    for i in range(input["steps"]):
        await asyncio.sleep(0)
        yield {"step": i}
