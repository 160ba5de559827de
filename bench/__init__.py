"""The benchmark harness: `python -m bench` measures what polling and running the
adapter cost, on loopback, and writes the table of docs/performance.md.

Everything it starts (the watched app, servers, blackbox_exporter, wrk, sleep
children) is a child process it stops again by pid, also on error and Ctrl-C.
"""
