"""Admin: reset a rate-limit key, e.g. after a customer's runaway script is fixed.

    DELETE /gateway/admin/rate-limits/<layer>/<key>

Keys are the subjects the layers count for: ``ip`` an address, ``user`` a principal's
rate key (``user:7`` or ``key:3``), ``company`` a company id, ``endpoint``
``<rate key>:<service>`` (``user:7:billing``), ``resource`` ``<company id>:<resource>``
(``3:bookings``).
"""
from flask import jsonify
from marshmallow import Schema, fields

from gateway_app.pipeline.declarations import ADMIN, gateway_policy
from gateway_app.services import operations

from . import blp, refused


class ResetOut(Schema):
    layer = fields.String()
    key = fields.String()
    cleared = fields.List(fields.String(), metadata={"description": "The quotas whose counts were reset."})


@blp.route("/rate-limits/<layer>/<path:key>", methods=["DELETE"])
@blp.response(200, ResetOut)
@gateway_policy(**ADMIN)
def reset_rate_limit(layer, key):
    """Reset the counters of one key in one rate-limit layer. Written to the audit log."""
    with refused():
        cleared = operations.reset_rate_limit(layer, key, via="admin-api")
    return jsonify(layer=layer, key=key, cleared=cleared)
