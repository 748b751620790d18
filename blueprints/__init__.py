"""One blueprint per business service, plus auth, webhooks, admin and operations."""
from importlib import import_module

# registration order = order in the OpenAPI document
BLUEPRINT_MODULES = [
    "home", "ops", "auth",
    "dashboard", "calls", "appointments", "customers", "analytics",
    "settings", "billing", "team",
    "webhooks", "admin", "console",
]


def register_all(api):
    for name in BLUEPRINT_MODULES:
        module = import_module(f"blueprints.{name}")
        api.register_blueprint(module.blp)
