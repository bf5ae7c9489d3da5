"""Seeded fault draws: which request gets which fault, reproducibly.

A draw depends on the seed, the request's digest and how many times that same request was
seen before, never on arrival order, so a concurrent test sees the same faults every run
and a retry of a faulted request draws afresh.
"""

from __future__ import annotations

import random

from pipeline.simulator.config import FAULT_KINDS, FaultKind, Faults


def draw(faults: Faults, digest: str, attempt: int, *, stream: bool) -> FaultKind | None:
    if not faults.any:
        return None
    roll = random.Random(f"{faults.seed}:{digest}:{attempt}").random()
    edge = 0.0
    for kind in FAULT_KINDS:
        edge += getattr(faults, kind)
        if roll < edge:
            # A mid-stream error needs a stream; a plain request is served untouched.
            return None if kind == "stream_error" and not stream else kind
    return None
