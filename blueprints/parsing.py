"""How every blueprint reads a request: JSON bodies, query parameters, the media type.

webargs (under flask-smorest's ``arguments``) would read a body whose Content-Type is
not JSON as no body at all, so a form post answered 422 with every field "missing"; it
decodes with Python's json module, which lets a deep, huge or surrogate-laden document
through to fail later as a 500; and it drops unknown query parameters, so a misspelt
filter was silently ignored. GatewayBlueprint gives every service one parser that
answers these the way docs/contract.md section 8 says: 415 for the wrong media type,
400 for malformed JSON (gateway_app/strict_json.py) and for an unknown query parameter.
"""
import marshmallow as ma
from flask import current_app, request
from flask_smorest import Blueprint
from webargs import core
from webargs.flaskparser import FlaskParser

from gateway_app import strict_json
from gateway_app.errors import GatewayProblem
from gateway_app.pipeline.declarations import ANY_QUERY

JSON = "application/json"
QUERY_LOCATIONS = ("query", "querystring")
# a view's marker: it reads the query through a schema (GatewayBlueprint.arguments)
READS_QUERY = "gateway_reads_query"


def malformed(reason):
    return GatewayProblem(400, "Malformed JSON", f"The request body is not valid JSON: {reason}",
                          problem_type="malformed-json")


def unsupported_media_type(sent):
    # RFC 9110 15.5.16: say which media type the resource accepts for this method
    accept = {"POST": "Accept-Post", "PATCH": "Accept-Patch"}.get(request.method)
    return GatewayProblem(
        415, "Unsupported Media Type",
        f"This endpoint reads a JSON body: send it with Content-Type: {JSON} "
        f"(the request {'said ' + repr(sent) if sent else 'named no Content-Type'}).",
        headers={accept: JSON} if accept else None, expected=JSON, received=sent or None)


def json_document(req):
    """The request's JSON document, webargs' ``missing`` for an empty body, or a problem."""
    body = req.get_data(cache=True)
    if not body:
        return core.missing
    if not core.is_json(req.mimetype):
        raise unsupported_media_type(req.headers.get("Content-Type"))
    try:
        return strict_json.loads(body)
    except strict_json.MalformedJSON as exc:
        raise malformed(exc.reason) from None


def unknown_query(names, accepted):
    names = sorted(names)
    listed = ", ".join(repr(name) for name in names)
    return GatewayProblem(
        400, "Unknown Query Parameter",
        f"Unknown query parameter{'s' if len(names) > 1 else ''} {listed}; this endpoint accepts "
        f"{', '.join(sorted(accepted)) if accepted else 'none'}.",
        problem_type="unknown-query-parameter", parameters=names, accepted=sorted(accepted))


def accepted_names(schema):
    return {field.data_key or name for name, field in schema.load_fields.items()}


class GatewayParser(FlaskParser):
    """webargs' Flask parser, strict about bodies and query parameters."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
                                   "query": ma.RAISE, "querystring": ma.RAISE}

    def load_json(self, req, schema):
        return json_document(req)

    def load_querystring(self, req, schema):
        """The query's parameters as a plain dict holding what webargs' MultiDictProxy
        gives for each name: its first value, or all of them (a list) for a field that
        takes several (``is_multiple``, or one of KNOWN_MULTI_FIELDS). The proxy looked
        up every field of the schema in werkzeug's MultiDict, whose ``get`` of an absent
        name raises and catches a BadRequestKeyError: a list's query string names two or
        three of its ten parameters, so that was half of the parsing's cost."""
        args = req.args
        if not args:
            return {}
        multiple = {field.data_key or name for name, field in schema.fields.items()
                    if takes_several(field, self.KNOWN_MULTI_FIELDS)}
        return {name: values if name in multiple else values[0] for name, values in args.lists()}

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        messages = error.messages if isinstance(error.messages, dict) else {}
        for location in QUERY_LOCATIONS:
            fields = messages.get(location)
            if isinstance(fields, dict):
                accepted = accepted_names(schema)
                unknown = [name for name in fields if name not in accepted and name != "_schema"]
                if unknown:
                    raise unknown_query(unknown, accepted)
        super().handle_error(error, req, schema, error_status_code=error_status_code,
                             error_headers=error_headers)


def takes_several(field, known_multi_fields):
    """Whether a query parameter read into ``field`` keeps all its values (webargs' rule)."""
    declared = getattr(field, "is_multiple", None)
    if declared is not None:
        return declared
    return isinstance(field, tuple(known_multi_fields))


def any_query_parameters(view):
    """Mark ``view`` as taking query parameters it does not declare (say why where used)."""
    setattr(view, ANY_QUERY, True)
    return view


class GatewayBlueprint(Blueprint):
    """flask-smorest's Blueprint with GatewayParser, and refusing query parameters on views
    that declare none. ``any_query=True``: every view of the blueprint takes any;
    ``documented=False``: its views are not in the API document (pages for people)."""

    ARGUMENTS_PARSER = GatewayParser()

    def __init__(self, *args, any_query=False, documented=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.any_query = any_query
        self.documented = documented
        if not any_query:
            self.before_request(refuse_undeclared_query)

    def arguments(self, schema, *, location="json", **kwargs):
        # webargs makes an instance of a schema class on every request it parses, which
        # costs more than the parsing: one instance serves every request
        if isinstance(schema, type):
            schema = schema()
        decorate = super().arguments(schema, location=location, **kwargs)
        if location not in QUERY_LOCATIONS:
            return decorate

        def marked(view):
            wrapped = decorate(view)
            setattr(wrapped, READS_QUERY, True)
            return wrapped
        return marked


def refuse_undeclared_query():
    """A view without a query schema takes no query parameter (its schema, when it has
    one, refuses unknown ones in GatewayParser)."""
    # the raw query string first: a view that reads its query never needs it parsed here
    if not request.query_string or request.method == "OPTIONS":
        return None
    view = current_app.view_functions.get(request.endpoint)
    if view is None or getattr(view, READS_QUERY, False) or getattr(view, ANY_QUERY, False):
        return None
    if not request.args:   # "?&": nothing named
        return None
    raise unknown_query(set(request.args), set())
