"""``--compare``: servers of another implementation (the seed API) measured beside
graphnursery's runs, and their ``--compare-pid`` pids."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from .client import split_target
from .report import GRAPHNURSERY


@dataclass(frozen=True)
class Compared:
    """A server of another implementation driven beside graphnursery (``--compare``)."""

    label: str
    url: str
    pid: int | None = None


def parse_compare(raw: str) -> list[tuple[str | None, str]]:
    """``[LABEL=]URL[,[LABEL=]URL...]`` -> [(label or None, url)]."""
    found: list[tuple[str | None, str]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        label, sep, url = part.partition("=")
        if not sep or label.startswith("http"):
            label, url = "", part
        label = label.strip()
        try:
            split_target(url.strip())
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        if label.startswith(GRAPHNURSERY):
            raise argparse.ArgumentTypeError(f"label {label!r} is taken by graphnursery's runs")
        found.append((label or None, url.strip()))
    if not found:
        raise argparse.ArgumentTypeError(f"expected [LABEL=]URL, got {raw!r}")
    return found


def parse_pids(raw: str) -> list[tuple[str | None, int]]:
    """``[LABEL=]PID[,...]`` -> [(label or None, pid)]."""
    found: list[tuple[str | None, int]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        label, sep, pid = part.rpartition("=")
        try:
            found.append((label.strip() if sep else None, int(pid)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected [LABEL=]PID, got {part!r}") from None
    if not found:
        raise argparse.ArgumentTypeError(f"expected [LABEL=]PID, got {raw!r}")
    return found


def compared_servers(
    urls: list[list[tuple[str | None, str]]], pids: list[list[tuple[str | None, int]]]
) -> list[Compared]:
    """``--compare`` and ``--compare-pid`` values -> servers; unlabelled pids go in order to
    the servers that have no labelled one. Default labels: compare, compare2, ..."""
    flat = [item for group in urls for item in group]
    labels: list[str] = []
    for n, (label, _) in enumerate(flat, 1):
        name = label or ("compare" if n == 1 else f"compare{n}")
        if name in labels:
            raise ValueError(f"--compare: label {name!r} used twice")
        labels.append(name)
    by_label: dict[str, int] = {}
    in_order: list[int] = []
    for label, pid in (item for group in pids for item in group):
        if label is None:
            in_order.append(pid)
        elif label not in labels:
            raise ValueError(f"--compare-pid: no --compare server is labelled {label!r}")
        else:
            by_label[label] = pid
    unassigned = [label for label in labels if label not in by_label]
    if len(in_order) > len(unassigned):
        raise ValueError("--compare-pid: more pids than --compare servers")
    by_label.update(zip(unassigned, in_order, strict=False))
    return [
        Compared(label, url, by_label.get(label))
        for label, (_, url) in zip(labels, flat, strict=True)
    ]
