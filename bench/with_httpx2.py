"""Diagnostics: run a benchmark with ``import httpx`` resolved to httpx2 (and httpcore to
httpcore2), process-wide, before anything imports them.

    python -m bench.with_httpx2 bench.client_overhead [its options]

httpx2 is the HTTP library the anthropic SDK (2.x) is built on; ``httpx2.alias_httpx()`` makes
our unchanged code run on it, so a benchmark can show what moving to it would give. Not a
configuration the pipeline ships.
"""

from __future__ import annotations

import runpy
import sys

import httpx2


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit("usage: python -m bench.with_httpx2 MODULE [options]")
    httpx2.alias_httpx()
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
