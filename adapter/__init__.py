"""health-adapter: pluggable health probes behind one uniform /health endpoint."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("health-adapter")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
