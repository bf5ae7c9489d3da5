"""The package's version: the user-agent, ``--version`` and the report page say it.

Written here once; ``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``), so the
installed metadata says the same. A constant, not ``importlib.metadata.version``: that
import (with the ``email`` package it pulls) cost ``pipeline --help`` about 35 ms.
"""

__version__ = "0.1.0"
