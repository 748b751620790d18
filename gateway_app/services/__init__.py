"""Domain rules and queries the business-service blueprints share."""
