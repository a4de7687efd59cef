from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GRAPHS = ROOT / "tests" / "graphs"

# Graph specs in tests are paths relative to the repository root, as a user would type them.
os.chdir(ROOT)
sys.path.insert(0, str(ROOT / "tests"))
