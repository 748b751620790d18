"""The operator API under /gateway/admin, guarded by GATEWAY_ADMIN_TOKEN.

One module per concern; each adds its routes to ``blp``. The guard lives in the
authentication stage (``gateway_policy(admin=True)``), like every other credential.
"""
from blueprints.parsing import GatewayBlueprint

blp = GatewayBlueprint("admin", __name__, url_prefix="/gateway/admin", description="Gateway administration")

from . import breakers, cache, companies, dev_mail, limits, registry  # noqa: E402,F401  (routes)
