"""The API as a real subprocess, started the way `fmw serve` starts it (`api.server.serve`),
trusting X-Forwarded-For from Nginx on 127.0.0.1.

    python -m tests.ops.apiserver PORT      (settings from FMW_CONFIG and the environment)
"""

from __future__ import annotations

import logging
import sys

from api.server import serve
from fmw.settings import load_settings
from ops.config import with_values


def main(port: int) -> None:
    logging.basicConfig(level=logging.INFO)
    settings = with_values(load_settings(), api_trusted_proxy="127.0.0.1",
                           api_dev_rate_per_minute=100_000, api_allowlist_refresh_s=0.5)
    serve(settings, "127.0.0.1", port)


if __name__ == "__main__":
    main(int(sys.argv[1]))
