"""health-adapter: pluggable health probes behind one uniform /health endpoint."""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata takes tens of milliseconds to
    # import, and `serve` takes over the stop signals before anything slow.
    if name != "__version__":
        raise AttributeError(f"module 'adapter' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("health-adapter")
    except PackageNotFoundError:  # running from a source tree that is not installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
