"""Team service."""
from flask_smorest import Blueprint

blp = Blueprint("team", __name__, url_prefix="/api/v1/team", description="Team service")
