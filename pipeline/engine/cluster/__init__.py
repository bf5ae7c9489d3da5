"""A job across a Ray cluster under one rate limit for the whole cluster (issue 19).

The tier's limits belong to the organisation, not to a machine. One Ray actor (``limiter``)
owns the tier's pacing state, a ``LeaseDesk``: the project's ``Pacer`` plus the cluster-wide
concurrency count. The processes that make calls hold a ``ClusterPacer`` (``pacer``), which
has the ``Pacer``'s methods and gets capacity from the desk in small leases: every request
waiting in that process at once is asked for in one round trip, and what the requests report
(the reply's usage, the server's rate-limit headers, a 429's cooldown) goes back in batches.

If the actor is gone, every caller stops with ``LimiterLost``: no call is sent without it.

Ray is the optional ``ray`` extra: ``desk`` and ``pacer`` do without it; the front doors call
``require_ray`` before they import the rest.
"""

from __future__ import annotations

import importlib.util

from pipeline.core.errors import ConfigError


def require_ray() -> None:
    """A ``ConfigError`` saying how to install Ray, if it is not installed."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError(
            "--executor ray needs Ray here and on every node of the cluster: "
            "pip install -c requirements-lock.txt -e '.[ray]'"
        )
