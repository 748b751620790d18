"""Inbound provider webhooks, each verified with the provider's own signature scheme."""
from flask_smorest import Blueprint

blp = Blueprint("webhooks", __name__, url_prefix="/webhooks", description="Provider webhooks")
