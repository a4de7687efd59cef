"""A graph file that cannot be imported: startup must fail with this error."""

import graphnursery_no_such_module  # noqa: F401


def graph(input):
    return input
