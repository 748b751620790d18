"""WSGI entry point: ``gunicorn -c conf/gunicorn.conf.py wsgi:app``."""
from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402

from gateway_app import create_app  # noqa: E402
from gateway_app.policy import PolicyError  # noqa: E402
from gateway_app.settings import SettingsError  # noqa: E402

try:
    app = create_app()
except (PolicyError, SettingsError) as exc:
    print(f"gateway: cannot start: {exc}", file=sys.stderr)
    sys.exit(3)  # gunicorn's "worker failed to boot": the arbiter stops instead of respawning
