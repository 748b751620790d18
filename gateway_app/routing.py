"""URL matching that keeps its answers.

werkzeug works out two things on every request that cannot change between requests
that look alike:

- the match of a path and method: it walks its rule state machine (the gateway has
  about 70 rules), though the answer stays the same while the rules do;
- where the request was sent (``bind_to_environ``): it reads and validates the Host
  header, IDNA-encodes the server name and looks for a websocket upgrade, though the
  answer depends only on those headers and the server's address.

Both are kept after the first success in LRU caches (functools.lru_cache: the keys come
from clients). A failure (404, 405, a redirect, a Host that cannot be IDNA-encoded)
raises, which the cache never keeps, so it is worked out every time; nor is the match
of a path longer than any the API names kept, and the caches' sizes cap what a flood of
distinct requests can make a worker hold (4096 matches of paths of at most 256
characters, 64 sites whose Host headers gunicorn caps at 8 KB). Matching through kept
matches needs werkzeug's private matcher: compat.py.
"""
import functools

from werkzeug.routing import IntegerConverter, Map, MapAdapter, ValidationError

from . import compat

# longer paths are matched every time: the API's own are far shorter, and a kept
# match holds its path
LONGEST_KEPT_PATH = 256


# every <int:...> in the API's paths is a row id, a BIGINT at most
MAX_ROW_ID = 2 ** 63 - 1


def digits_up_to(maximum):
    """A regex matching exactly the decimal numbers 0..maximum (no leading zeros beyond
    one digit's worth): shorter numbers, then each prefix of ``maximum`` followed by a
    smaller digit and any digits, then ``maximum`` itself."""
    text = str(maximum)
    options = [rf"\d{{1,{len(text) - 1}}}"] if len(text) > 1 else []
    for position, digit in enumerate(text):
        # a smaller digit here, any digits after; a leading 0 only for a one-digit number
        lowest = 1 if position == 0 and len(text) > 1 else 0
        if int(digit) > lowest:
            rest = len(text) - position - 1
            options.append(f"{text[:position]}[{lowest}-{int(digit) - 1}]" + (rf"\d{{{rest}}}" if rest else ""))
    options.append(text)
    return "(?:" + "|".join(options) + ")"


class RowIdConverter(IntegerConverter):
    """werkzeug's ``int``, bounded to what a row id can be: a larger number matches no
    route (404), rather than reaching the database, where SQLite cannot bind it (a 500);
    and one of thousands of digits is refused before int() (which raises past 4300).

    The bound is in the regex, not only in ``to_python``: werkzeug's matcher collects the
    methods of the rules whose regex matches before converting, so a path with a DELETE
    rule and a PATCH rule answered a too-large id's DELETE with 405 (Allow: PATCH)."""

    regex = digits_up_to(MAX_ROW_ID)

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ROW_ID, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)

    def to_python(self, value):
        if len(value) > len(str(MAX_ROW_ID)):
            raise ValidationError()
        return super().to_python(value)


def wsgi_text(environ, key, absent=None):
    """A WSGI environ string as text (PEP 3333 carries bytes as latin-1), as werkzeug reads it."""
    value = environ.get(key)
    return absent if value is None else value.encode("latin1").decode(errors="replace")


class GatewayMap(Map):
    """Flask's URL map, matching through compat.KeptMatches and keeping each site's binding;
    ``int`` path parameters are RowIdConverter's."""

    default_converters = {**Map.default_converters, "int": RowIdConverter}

    def __init__(self, rules=None, kept_matches=4096, kept_sites=64, **kwargs):
        super().__init__(None, **kwargs)
        self.kept_matches = compat.keep_matches(self, kept_matches, LONGEST_KEPT_PATH)
        self.site_of = functools.lru_cache(maxsize=kept_sites)(self.find_site)
        for rule_factory in rules or ():
            self.add(rule_factory)

    def bind_to_environ(self, environ, server_name=None, subdomain=None):
        environ = getattr(environ, "environ", environ)   # a request, as werkzeug accepts
        site_name, site_subdomain, url_scheme = self.site_of(
            server_name, subdomain, environ.get("HTTP_HOST"), environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"), environ["wsgi.url_scheme"],
            environ.get("HTTP_CONNECTION"), environ.get("HTTP_UPGRADE"))
        # the rest as werkzeug's bind: an absent script name or path is "/"
        return MapAdapter(self, site_name, wsgi_text(environ, "SCRIPT_NAME", "/"), site_subdomain,
                          url_scheme, wsgi_text(environ, "PATH_INFO", "/"),
                          environ["REQUEST_METHOD"], wsgi_text(environ, "QUERY_STRING"))

    def find_site(self, server_name, subdomain, host, wsgi_server_name, port, scheme,
                  connection, upgrade):
        """(server name, subdomain, url scheme) as werkzeug's bind_to_environ makes them
        from all it reads to find where a request was sent."""
        environ = {"wsgi.url_scheme": scheme, "REQUEST_METHOD": "GET"}
        for name, value in (("HTTP_HOST", host), ("SERVER_NAME", wsgi_server_name),
                            ("SERVER_PORT", port), ("HTTP_CONNECTION", connection),
                            ("HTTP_UPGRADE", upgrade)):
            if value is not None:
                environ[name] = value
        adapter = super().bind_to_environ(environ, server_name, subdomain)
        return adapter.server_name, adapter.subdomain, adapter.url_scheme
