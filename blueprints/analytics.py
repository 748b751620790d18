"""Analytics service."""
from flask_smorest import Blueprint

blp = Blueprint("analytics", __name__, url_prefix="/api/v1/analytics", description="Analytics service")
