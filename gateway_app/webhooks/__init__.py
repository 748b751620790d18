"""Inbound provider webhooks: verification (signatures), exactly-once processing (dedupe),
and one module per provider that turns its events into rows of the data model.

The HTTP side lives in blueprints/webhooks.py; nothing here reads the request.
"""
