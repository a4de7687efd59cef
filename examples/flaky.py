"""A graph that raises: the job ends `failed` with the exception's type and message.

Send {"input": {"ok": true}} to get a result instead.
"""


class UpstreamError(RuntimeError):
    pass


def graph(input: dict) -> dict:
    if isinstance(input, dict) and input.get("ok"):
        return {"ok": True}
    raise UpstreamError("the upstream model answered 503")
