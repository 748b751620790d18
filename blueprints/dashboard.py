"""Dashboard service."""
from flask_smorest import Blueprint

blp = Blueprint("dashboard", __name__, url_prefix="/api/v1/dashboard", description="Dashboard service")
