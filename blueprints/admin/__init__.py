"""The operator API under /gateway/admin, guarded by GATEWAY_ADMIN_TOKEN.

One module per concern; each adds its routes to ``blp``. The guard lives in the
authentication stage (``gateway_policy(admin=True)``), like every other credential.
"""
import contextlib
from http import HTTPStatus

from blueprints.parsing import GatewayBlueprint
from gateway_app.errors import GatewayProblem
from gateway_app.services.operations import OperationRefused

blp = GatewayBlueprint("admin", __name__, url_prefix="/gateway/admin", description="Gateway administration")


@contextlib.contextmanager
def refused():
    """An operation (gateway_app/services/operations.py) refused: its problem."""
    try:
        yield
    except OperationRefused as exc:
        raise GatewayProblem(exc.status, HTTPStatus(exc.status).phrase, exc.detail, **exc.fields) from None


from . import breakers, cache, companies, dev_mail, limits, outbox, registry  # noqa: E402,F401  (routes)
