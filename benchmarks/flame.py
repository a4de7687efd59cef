"""Summarise a py-spy raw profile: ``python -m benchmarks.flame /tmp/p.txt [--top 30]``.

Record one with ``py-spy record -f raw -o /tmp/p.txt -d 10 -p SERVER_PID`` during a run.
Prints self and inclusive shares by function, and inclusive shares by package (file).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")


def _key(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), "?"
    return match["func"], match["file"]


def _package(path: str) -> str:
    parts = Path(path).parts
    for anchor in ("site-packages", "graphnursery", "lib"):
        if anchor in parts:
            rest = parts[parts.index(anchor) + 1 :]
            if anchor == "graphnursery":
                return "graphnursery/" + "/".join(rest)
            return rest[0] if rest else path
    return path


def summarise(path: Path, top: int) -> str:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_key(f) for f in stack.split(";") if f.strip()]
        names = [f"{func} ({Path(file).name})" for func, file in frames]
        if names:
            own[names[-1]] += count
        for name in set(names):
            inclusive[name] += count
        for package in {_package(file) for _, file in frames}:
            packages[package] += count
    out = [f"{total} samples"]
    for title, counter in (("self", own), ("inclusive", inclusive), ("by package", packages)):
        out.append(f"\n-- {title} --")
        for name, count in counter.most_common(top):
            out.append(f"{100 * count / max(total, 1):5.1f}%  {name}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    print(summarise(args.profile, args.top))


if __name__ == "__main__":
    main()
