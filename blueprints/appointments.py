"""Appointments service."""
from flask_smorest import Blueprint

blp = Blueprint("appointments", __name__, url_prefix="/api/v1/appointments", description="Appointments service")
