"""The operator API under /gateway/admin, guarded by GATEWAY_ADMIN_TOKEN."""
from flask_smorest import Blueprint

blp = Blueprint("admin", __name__, url_prefix="/gateway/admin", description="Gateway administration")
