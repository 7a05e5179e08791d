"""Host-synchronising control flow in a compiled program, counted from its optimised HLO.

On XLA:GPU every `conditional` copies its branch index to the host and waits for the stream, and
so does every iteration of a `while` whose trip count XLA could not infer; a scan of static length
runs without it. This walks the HLO's call graph from the entry computation, multiplying by the
known trip counts of the loops it enters, and reports how often such points run per vector step.
Branch bodies count as if taken every time, so the counts are upper bounds.

    >>> counts = sync_points(program.chunk_text(), program.steps_per_call)  # doctest: +SKIP
    >>> counts["per_step"]  # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_HEADER = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) [(]")
_NAME = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = ")
_WHILE = re.compile(r"\bwhile\(.*?condition=%?([\w.\-]+), body=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_TRUE_FALSE = re.compile(r"true_computation=%?([\w.\-]+), false_computation=%?([\w.\-]+)")
_CALLS = re.compile(r"\b(?:to_apply|calls)=%?([\w.\-]+)")
_BACKEND = re.compile(r"backend_config=(\{.*\})\s*$")


@dataclass(frozen=True)
class SyncPoint:
    """One host-synchronising op: its kind, name, and executions per call of the program."""

    kind: str  # "conditional" or "while" (a while of unknown trip count)
    name: str
    executions: float


def _computations(text: str) -> dict[str, list[str]]:
    comps: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace():
            m = _HEADER.match(line)
            current = m.group(1) if m and line.rstrip().endswith("{") else None
            if current is not None:
                comps[current] = []
                if line.startswith("ENTRY"):
                    comps["__entry__"] = [current]
        elif current is not None and "=" in line:
            comps[current].append(line)
    return comps


def _trip_count(line: str) -> int | None:
    m = _BACKEND.search(line)
    if not m:
        return None
    try:
        n = json.loads(m.group(1)).get("known_trip_count", {}).get("n")
    except ValueError:
        return None
    return int(n) if n is not None else None


def find(text: str) -> list[SyncPoint]:
    """Every conditional and unknown-trip-count while, with its executions per call (upper bound)."""
    comps = _computations(text)
    entry = comps.pop("__entry__", [None])[0]
    found: list[SyncPoint] = []

    def walk(name: str, times: float, depth: int = 0) -> None:
        if depth > 64:  # HLO call graphs are acyclic; this only guards against a misparse
            return
        for line in comps.get(name, []):
            op = _NAME.match(line)
            op_name = op.group(1) if op else "?"
            if (m := _WHILE.search(line)) is not None:
                trips = _trip_count(line)
                if trips is None:
                    found.append(SyncPoint("while", op_name, times))
                walk(m.group(2), times * (trips if trips is not None else 1), depth + 1)
            elif " conditional(" in line:
                found.append(SyncPoint("conditional", op_name, times))
                m = _BRANCHES.search(line)
                branches = [b.strip().lstrip("%") for b in m.group(1).split(",")] if m else list(_TRUE_FALSE.search(line).groups())
                for b in branches:
                    walk(b, times, depth + 1)
            else:
                for callee in _CALLS.findall(line):
                    walk(callee, times, depth + 1)

    if entry is not None:
        walk(entry, 1.0)
    return found


def sync_points(text: str, steps_per_call: int) -> dict:
    """Counts per vector step: `per_step` ops run at least once every step (the steady state);
    `periodic` ops run less often (evaluations, chunk ends), with their average rate."""
    points = find(text)
    rate = lambda p: p.executions / steps_per_call
    steady = [p for p in points if rate(p) >= 1]
    return {
        "per_step": len(steady),
        "conditionals_per_step": sum(rate(p) for p in steady if p.kind == "conditional"),
        "unknown_loops_per_step": sum(rate(p) for p in steady if p.kind == "while"),
        "periodic": [{"kind": p.kind, "per_step": round(rate(p), 6)} for p in points if rate(p) < 1],
        "steady": [{"kind": p.kind, "name": p.name, "per_step": round(rate(p), 3)} for p in steady],
    }
