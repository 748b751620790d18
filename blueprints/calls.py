"""Calls service."""
from flask_smorest import Blueprint

blp = Blueprint("calls", __name__, url_prefix="/api/v1/calls", description="Calls service")
