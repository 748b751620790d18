"""Customers service."""
from flask_smorest import Blueprint

blp = Blueprint("customers", __name__, url_prefix="/api/v1/customers", description="Customers service")
