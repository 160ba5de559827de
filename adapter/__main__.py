"""`python -m adapter` and the `health-adapter` script.

The stop signals are taken over before the command line's modules (aiohttp,
the probes, the config) are imported: a SIGTERM during those first tenths of
a second is a clean, logged stop, not a silent exit 143.
"""

import sys


def main() -> int:
    """Run the command line; returns the exit status (see adapter.cli)."""
    if sys.argv[1:2] == ["serve"]:
        from adapter import stopping

        stopping.install()
    from adapter.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
