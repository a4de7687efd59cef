"""A graph that logs through the standard library, as real graphs do."""

import logging

log = logging.getLogger("my_graph")


def graph(input):
    log.info("thinking about %s", input["n"])
    for i in range(input.get("spam", 0)):
        log.info("spam %d", i)
    log.warning("almost done")
    log.debug("not shown at info level")
    return {"n": input["n"]}
