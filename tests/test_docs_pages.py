"""/docs is served by the gateway alone; GET / points to the documentation."""
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

ASSET_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",),
               ".png": ("image/png",)}


class References(HTMLParser):
    """Every URL the page makes a browser load: scripts, styles, images, frames."""

    def __init__(self):
        super().__init__()
        self.urls = []
        self.inline_scripts = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and (tag != "a"):
                self.urls.append(attrs[name])
        self._in_script = tag == "script" and not attrs.get("src")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)


def test_docs_page_references_only_same_origin_assets_that_answer(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    parser = References()
    parser.feed(page.get_data(as_text=True))
    assert len(parser.urls) >= 3   # Swagger UI's bundle, preset and stylesheet
    for url in parser.urls:
        absolute = urljoin("http://localhost/docs", url)
        assert urlsplit(absolute).netloc == "localhost", f"{url} is on another host"
    for script in parser.inline_scripts:
        assert "http://" not in script and "https://" not in script
    for url in parser.urls:
        path = urlsplit(urljoin("http://localhost/docs", url)).path
        asset = client.get(path)
        assert asset.status_code == 200, path
        suffix = path[path.rfind("."):]
        assert asset.mimetype in ASSET_TYPES[suffix], (path, asset.mimetype)
        assert len(asset.get_data()) > 1000, path
    bundle = client.get(next(urlsplit(u).path for u in parser.urls if u.endswith("swagger-ui-bundle.js")))
    assert b"SwaggerUIBundle" in bundle.get_data()


def test_docs_assets_revalidate_and_refuse_what_is_not_there(client):
    first = client.get("/docs/assets/swagger-ui.css")
    assert first.status_code == 200 and first.headers.get("ETag")
    again = client.get("/docs/assets/swagger-ui.css", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    for missing in ("/docs/assets/nothing.js", "/docs/assets/../../../setup.py",
                    "/docs/assets/%2e%2e/flask_swagger_ui.py"):
        response = client.get(missing)
        assert response.status_code == 404, missing
        assert response.mimetype == "application/problem+json"


def test_root_points_to_the_documentation(client):
    answer = client.get("/")
    assert answer.status_code == 200 and answer.mimetype == "application/json"
    links = {name: link["href"] for name, link in answer.get_json()["links"].items()}
    assert links["docs"] == "/docs" and links["openapi"] == "/openapi.json"
    assert links["console"] == "/gateway/console"
    assert "accept" in answer.headers["Vary"].lower()
    assert client.get(links["docs"]).status_code == 200
    assert client.get(links["openapi"]).status_code == 200


@pytest.mark.parametrize("accept,mimetype", [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),   # a browser
    ("application/json", "application/json"),
    ("*/*", "application/json"),
])
def test_root_answers_html_to_a_browser(client, accept, mimetype):
    answer = client.get("/", headers={"Accept": accept})
    assert answer.status_code == 200 and answer.mimetype == mimetype
    if mimetype == "text/html":
        text = answer.get_data(as_text=True)
        for href in ("/docs", "/openapi.json", "/gateway/console"):
            assert f'href="{href}"' in text


def test_root_and_docs_need_no_credential_and_spend_no_quota(client):
    for path in ("/", "/docs", "/docs/assets/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "RateLimit" not in response.headers
