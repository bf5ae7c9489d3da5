"""The installed package's version: the user-agent, ``--version`` and the report page say it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pipeline")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
