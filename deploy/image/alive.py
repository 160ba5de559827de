#!/opt/health-adapter/bin/python
"""Exit 0 when the adapter in this container answers HTTP, 1 when it does not.

The image's HEALTHCHECK and the adapter container's own livenessProbe run it.
It asks whether the adapter works, not whether the application it watches is
healthy: any HTTP answer from /livez, a 503 included, means the adapter is
serving (restarting it would not bring a failing application back); a refused
connection or a time-out means it is not.
"""

import os
import sys
import urllib.error
import urllib.request

URL = os.environ.get("HEALTH_ADAPTER_ALIVE_URL", "http://127.0.0.1:9180/livez")
TIMEOUT = 3.0


def main() -> int:
    # An empty ProxyHandler: a proxy set in the environment must not get this request.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(URL, timeout=TIMEOUT):
            return 0
    except urllib.error.HTTPError:
        return 0
    except OSError as error:
        print(f"health-adapter is not answering at {URL}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
