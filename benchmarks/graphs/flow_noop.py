"""The node function of ``benchmarks.flow10``: a no-op (``benchmarks.graphs.flow_noop:noop``)."""


def noop(x: object) -> object:
    return x
