"""The front door: ``GET /`` points to the documentation, and the files of ``/docs``.

/docs (flask-smorest's Swagger UI page) loads its scripts and styles from
SWAGGER_UI_ASSETS_PATH, served here from the installed package, so the page works with
no other host reachable.
"""
import os

from flask import current_app, jsonify, render_template_string, request, send_from_directory
from marshmallow import Schema, fields

from blueprints.parsing import GatewayBlueprint, any_query_parameters
from gateway_app.openapi import SWAGGER_UI_ASSETS_PATH, SWAGGER_UI_DIST, undocumented
from gateway_app.pipeline.declarations import gateway_policy

blp = GatewayBlueprint("home", __name__, description="Where the documentation is")
PUBLIC = dict(public=True, exempt_limits=True)   # as the documentation pages themselves
ASSET_MAX_AGE = 3600   # revalidated by ETag afterwards; a new package version changes the files

LINKS = {
    "docs": {"href": "/docs", "title": "API reference (Swagger UI)"},
    "openapi": {"href": "/openapi.json", "title": "OpenAPI document"},
    "console": {"href": "/gateway/console", "title": "Operations console (administrators)"},
    "health": {"href": "/health", "title": "Liveness"},
}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title></head>
<body><h1>{{ title }}</h1><ul>
{% for link in links.values() %}<li><a href="{{ link.href }}">{{ link.title }}</a></li>
{% endfor %}</ul></body></html>
"""


class LinkOut(Schema):
    href = fields.String()
    title = fields.String()


class LinksOut(Schema):
    docs = fields.Nested(LinkOut)
    openapi = fields.Nested(LinkOut)
    console = fields.Nested(LinkOut)
    health = fields.Nested(LinkOut)


class IndexOut(Schema):
    name = fields.String()
    version = fields.String()
    links = fields.Nested(LinksOut)


@blp.route("/")
@blp.doc(operationId="getIndex")
@blp.response(200, IndexOut, description="JSON, or an HTML page of the same links for text/html.")
@gateway_policy(**PUBLIC)
def index():
    """Links to the documentation: JSON, or an HTML page for a browser that asks for one."""
    title = current_app.config["API_TITLE"]
    wanted = request.accept_mimetypes.best_match(["application/json", "text/html"],
                                                 default="application/json")
    if wanted == "text/html":
        response = current_app.response_class(render_template_string(PAGE, title=title, links=LINKS),
                                              mimetype="text/html")
    else:
        response = jsonify(name=title, version=current_app.config["API_VERSION"], links=LINKS)
    response.vary.add("Accept")
    return response


@blp.route(SWAGGER_UI_ASSETS_PATH + "<path:name>")
@undocumented
@any_query_parameters   # the documentation's own files, as /docs itself: a browser may add any
@gateway_policy(**PUBLIC)
def docs_asset(name):
    """A file of Swagger UI, for the /docs page."""
    return send_from_directory(os.fspath(SWAGGER_UI_DIST), name, max_age=ASSET_MAX_AGE)
