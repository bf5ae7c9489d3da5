"""Every default the stages share, in one place: a default changed here changes it everywhere.

A stage reads its default from here rather than writing the number where it is used, so that
the job spec, the plan, the pool and the client cannot disagree.
"""

from __future__ import annotations

from typing import Literal

# Requests in flight at once when neither the job (limits.max_concurrency) nor its tier says:
# the job spec's limits, the plan's time estimate, the online pool and the HTTP client's
# connection pool all start from it.
CONCURRENCY = 4

# The local simulator (``pipeline.simulator``): the key it accepts unless told others, and
# which models it serves. Here, not in the simulator, so that the command line can offer them
# without importing it (uvicorn, starlette): the simulator is imported only when simulating.
SIMULATOR_API_KEY = "sk-sim-local-key"
# The ids on MegaLLM's page (by default: the gateway this project is for), Anthropic's current
# list (with its aliases), or both.
ModelSet = Literal["gateway", "anthropic", "both"]
MODEL_SETS: tuple[ModelSet, ...] = ("gateway", "anthropic", "both")
