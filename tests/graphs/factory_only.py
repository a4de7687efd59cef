"""A module with no `graph`, only a `create_graph()` factory."""


class Counter:
    def __init__(self):
        self.calls = 0

    def invoke(self, input):
        self.calls += 1
        return {"calls": self.calls}


def create_graph():
    return Counter()
