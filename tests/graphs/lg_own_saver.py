"""lg_thread's chat graph compiled with a checkpointer of its own: a SQLite file the
environment names (GN_TEST_OWN_CHECKPOINTS). graphnursery keeps it rather than its own."""

import os
import sqlite3

from langgraph.checkpoint.sqlite import SqliteSaver
from lg_thread import builder

connection = sqlite3.connect(os.environ["GN_TEST_OWN_CHECKPOINTS"], check_same_thread=False)
graph = builder.compile(checkpointer=SqliteSaver(connection))
