"""Billing service."""
from flask_smorest import Blueprint

blp = Blueprint("billing", __name__, url_prefix="/api/v1/billing", description="Billing service")
