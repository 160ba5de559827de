#!/bin/sh
# Start the demo app in the background and the adapter watching it in the foreground.
# Ctrl-C stops both. Needs health-adapter on PATH (see README.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
"$python" "$here/app.py" &
app=$!
trap 'kill "$app" 2>/dev/null; wait "$app" 2>/dev/null' EXIT INT TERM
health-adapter serve --config "$here/health.yaml"
