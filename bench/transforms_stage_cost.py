"""CPU cost of the transforms stage (pipeline/transforms.py), in-process, per request.

Not a wrk bench: it times the stage's own work, side by side in one run, best of 5:
a no-op stage's ``before`` (the floor), the transforms stage's ``before`` for a route
with nothing declared (with no service declared, and with another service declared),
and a typical declared transform (a request header added and a query parameter renamed;
a response header removed and a field of a small JSON answer renamed).

    .venv/bin/python bench/transforms_stage_cost.py
"""
import timeit

from flask import Flask, Request, Response
from werkzeug.test import EnvironBuilder

from gateway_app.context import RequestContext
from gateway_app.pipeline.base import Stage
from gateway_app.pipeline.transforms import TransformsSchema, TransformsStage

TYPICAL = {"request": {"headers": {"add": {"X-Source": "gateway"}}, "query": {"rename": {"since": "from"}}},
           "response": {"headers": {"remove": ["Server"]}, "json": {"rename": {"kpi_list": "kpis"}}}}
BODY = b'{"kpi_list":[1,2,3],"from":"2030-05-01","to":"2030-05-31","timezone":"UTC"}'
CALLS = 200_000


def stage_with(services):
    return TransformsStage(TransformsSchema().load({"services": services}), {})


def request_for(service):
    request = Request(EnvironBuilder(path="/api/v1/analytics/kpis", query_string="since=2030-05-01").get_environ())
    request.url_rule = None
    ctx = RequestContext(request_id="r" * 16)
    ctx.service = service
    return ctx, request


def per_call(run):
    return min(timeit.repeat(run, number=CALLS, repeat=5)) / CALLS * 1e9


def main():
    app = Flask(__name__)
    noop, none_declared = Stage(), stage_with({})
    other_declared, typical = stage_with({"billing": TYPICAL}), stage_with({"analytics": TYPICAL})
    ctx, request = request_for("analytics")
    rows = [("no-op stage before (floor)", lambda: noop.before(ctx, request)),
            ("transforms before, nothing declared", lambda: none_declared.before(ctx, request)),
            ("transforms before, another service declared", lambda: other_declared.before(ctx, request))]

    def typical_request():
        fresh_ctx, fresh_request = request_for("analytics")
        typical.before(fresh_ctx, fresh_request)
        response = Response(BODY, mimetype="application/json", headers={"Server": "upstream"})
        typical.after(fresh_ctx, fresh_request, response)

    def untransformed_request():   # what typical_request costs besides the transforms
        request_for("analytics")
        Response(BODY, mimetype="application/json", headers={"Server": "upstream"})

    rows += [("request+response objects alone", untransformed_request),
             ("the same, with the typical transform", typical_request)]
    with app.app_context():
        for label, run in rows:
            print(f"{label:48s} {per_call(run):8.0f} ns")


if __name__ == "__main__":
    main()
