"""Print the requirements the Windows lane installs, one per line, from pyproject.toml.

[project].dependencies plus the `test` extra, minus what the Windows subset never uses
(playwright: the browser tests; schemathesis: the OpenAPI fuzzing) - see LANE_SKIPS.
Linux pip evaluates environment markers for Linux, so this only lists FMW's direct
requirements; the Windows-only transitive ones are added by .ci/windows (WINDOWS_ONLY).
Usage: python3 deps.py PYPROJECT
"""

import re
import sys
import tomllib

LANE_SKIPS = {"playwright", "schemathesis"}


def main(pyproject: str) -> None:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    reqs = list(project["dependencies"]) + list(project["optional-dependencies"]["test"])
    for text in reqs:
        name = re.match(r"[A-Za-z0-9._-]+", text.strip()).group(0).lower().replace("_", "-")
        if name not in LANE_SKIPS:
            print(text)


if __name__ == "__main__":
    main(sys.argv[1])
