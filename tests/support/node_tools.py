"""The npm tools of the OpenAPI tests, installed by `make node-tools` into var/node."""
import os
from pathlib import Path

import pytest

from tests.support.servers import ROOT

NODE_DIR = Path(ROOT) / "var" / "node"


def node_tool(name):
    """The path of an installed tool's command; without it the test skips saying so, or
    fails under CI=1 (where .ci/run and the Makefile install it)."""
    path = NODE_DIR / "node_modules" / ".bin" / name
    if not path.exists():
        reason = f"{name} is not installed in {NODE_DIR} (run `make node-tools`; it needs npm)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return str(path)
