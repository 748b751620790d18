"""The console and CORS in a real browser: headless Chromium (Debian's chromium and
chromium-driver) driven by Selenium, against the gateway served on loopback.

These tests skip, saying why, only when Chromium or its driver is absent and could not be
installed (the Makefile's `test` and .ci/run install them); under CI=1 they fail instead.
CONSOLE_SCREENSHOTS=docs writes the README's screenshots into docs/.
"""
import http.server
import json
import os
import shutil
import threading
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from tests.conftest import build_app, sign_up

TOKEN = "admin-token-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
WAIT = 20   # seconds: a poll is every 5 s

pytestmark = pytest.mark.browser
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def waiting(browser):
    """A wait of up to WAIT seconds that looks again when a look-up fails: a click that
    submits one of the console's forms navigates, and chromedriver refuses a look-up made
    while the page changes ("aborted by navigation") as well as one that finds nothing."""
    return WebDriverWait(browser, WAIT, ignored_exceptions=(WebDriverException,))


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        reason = ("Chromium or chromedriver is not installed and could not be: "
                  "apt-get install chromium chromium-driver (make test does it as root)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1400,2000", "--no-first-run", "--disable-extensions",
                     # no call home of Chromium's own (component updates, safe browsing): the
                     # network log must hold the pages' requests only
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


class Served:
    """A WSGI app served on a loopback port by a thread, for the browser."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


@pytest.fixture
def served(database_url, redis_url, redis_client, built_apps, browser):
    started = []

    def serve(**config):
        app = built_apps(build_app(database_url, redis_url, **config))
        started.append(Served(app))
        return app, started[-1]
    yield serve
    browser.delete_all_cookies()
    browser.get_log("performance"), browser.get_log("browser")   # this test's entries go with it
    for server in started:
        server.stop()


class StaticSite(http.server.ThreadingHTTPServer):
    """A second local origin: answers every GET with ``page`` (HTML), or 500 when ``failing``
    (an upstream instance that fails, /health excepted so that it stays registered)."""

    def __init__(self, page=b"", failing=False):
        site = self
        self.page, self.failing = page, failing

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                failed = site.failing and not self.path.startswith("/health")
                body = b'{"error": "down"}' if failed else site.page
                self.send_response(500 if failed else 200)
                self.send_header("Content-Type", "application/json" if failed else "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.shutdown()
        self.server_close()


def log_in(browser, origin):
    browser.get(origin + "/gateway/console")
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
    waiting(browser).until(EC.presence_of_element_located((By.ID, "breakers")))


def wait_for_a_poll(browser):
    before = browser.find_element(By.ID, "live").text
    waiting(browser).until(lambda b: b.find_element(By.ID, "live").text != before)


def requested_urls(browser):
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(browser, name):
    if SCREENSHOTS:
        browser.save_screenshot(os.path.join(SCREENSHOTS, name))


def question(browser):
    """The confirmation's question, once the console has shown it (the click fetches it)."""
    return waiting(browser).until(EC.visibility_of_element_located((By.ID, "question"))).text


def confirm(browser):
    waiting(browser).until(EC.element_to_be_clickable((By.ID, "confirm"))).click()
    return waiting(browser).until(EC.presence_of_element_located((By.ID, "message"))).text


def test_the_console_loads_with_no_error_and_no_request_to_another_host(served, browser):
    app, server = served()
    with app.app_context():
        tenant = sign_up(app.test_client(), tier="pro")
        for _ in range(3):
            tenant.get("/api/v1/calls")
    log_in(browser, server.origin)
    wait_for_a_poll(browser)   # the script ran, fetched the panels and swapped them in
    with app.app_context():
        for _ in range(5):
            tenant.get("/api/v1/calls")
    wait_for_a_poll(browser)
    assert browser.find_element(By.ID, "breaker-stripe").get_attribute("data-state") == "closed"
    assert "calls" in browser.find_element(By.ID, "services").text
    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    urls = requested_urls(browser)
    assert any(url.endswith("/gateway/console/assets/console.js") for url in urls)
    assert any(url.endswith("/gateway/console/panels") for url in urls)
    foreign = [url for url in urls if not url.startswith(server.origin + "/") and not url.startswith("data:")]
    assert foreign == []
    if SCREENSHOTS:   # a few intervals of traffic, so that the charts have lines
        for burst in (12, 4, 9):
            with app.app_context():
                for _ in range(burst):
                    tenant.get("/api/v1/calls")
            for _ in range(2):
                wait_for_a_poll(browser)
        screenshot(browser, "console.png")


def test_a_breaker_opens_when_its_upstream_fails_and_is_closed_again(served, browser):
    app, server = served()
    upstream = StaticSite(b'{"status": "ok"}', failing=True)
    try:
        with app.app_context():
            admin = app.test_client()
            tenant = sign_up(admin, tier="pro")
            added = admin.post("/gateway/admin/registry/calls/instances",
                               json={"url": f"http://127.0.0.1:{upstream.port}"}, headers=ADMIN)
            assert added.status_code == 201
            log_in(browser, server.origin)
            assert browser.find_element(By.ID, "breaker-calls").get_attribute("data-state") == "closed"
            statuses = [tenant.get("/api/v1/calls").status_code for _ in range(5)]
            assert statuses == [503] * 5
        # the console notices on its next poll, without a reload
        waiting(browser).until(
            lambda b: b.find_element(By.ID, "breaker-calls").get_attribute("data-state") == "open")
        assert "remote" in browser.find_element(By.ID, "service-calls").text
        screenshot(browser, "console-breaker-open.png")
        browser.find_element(By.ID, "force-calls-closed").click()
        assert confirm(browser) == "The calls breaker is now closed."
        browser.find_element(By.ID, "back").click()
        waiting(browser).until(EC.presence_of_element_located((By.ID, "breakers")))
        assert browser.find_element(By.ID, "breaker-calls").get_attribute("data-state") == "closed"
    finally:
        upstream.stop()


def test_a_purge_from_the_console_empties_the_namespace(served, browser):
    app, server = served()
    with app.app_context():
        tenant = sign_up(app.test_client(), tier="pro")
        assert tenant.get("/api/v1/calls").headers["X-Cache"] == "MISS"
        assert tenant.get("/api/v1/calls").headers["X-Cache"].startswith("HIT")
    log_in(browser, server.origin)
    Select(browser.find_element(By.ID, "purge-namespace")).select_by_value("calls")
    browser.find_element(By.ID, "purge").click()
    assert "Purge the cached responses of namespace calls?" in question(browser)
    screenshot(browser, "console-confirm.png")
    assert confirm(browser) == "Purged: calls."
    with app.app_context():
        assert tenant.get("/api/v1/calls").headers["X-Cache"] == "MISS"


PORTAL_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>portal</title></head><body>
<pre id="out">waiting</pre>
<script>
fetch("{gateway}/api/v1/calls?limit=1", {{headers: {{"Authorization": "Bearer {token}"}}}})
  .then(function (r) {{ return r.json().then(function (body) {{
    document.getElementById("out").textContent = "status " + r.status + " data " + body.data.length; }}); }})
  .catch(function (e) {{ document.getElementById("out").textContent = "refused " + e.name; }});
</script></body></html>"""


def test_a_page_of_a_listed_origin_reads_the_api_and_another_cannot(served, browser):
    portal = StaticSite()
    portal_origin = f"http://127.0.0.1:{portal.port}"
    try:
        app, server = served(GATEWAY_CORS_ORIGINS=(portal_origin,))
        with app.app_context():
            tenant = sign_up(app.test_client(), tier="pro")
        portal.page = PORTAL_PAGE.format(gateway=server.origin, token=tenant.token).encode()
        browser.get(portal_origin + "/")
        waiting(browser).until(lambda b: b.find_element(By.ID, "out").text != "waiting")
        assert browser.find_element(By.ID, "out").text == "status 200 data 0"
        # the same page from an origin not listed: the browser keeps the answer from it
        unlisted = f"http://localhost:{portal.port}"
        assert urlsplit(unlisted).netloc != urlsplit(portal_origin).netloc
        browser.get(unlisted + "/")
        waiting(browser).until(lambda b: b.find_element(By.ID, "out").text != "waiting")
        assert browser.find_element(By.ID, "out").text == "refused TypeError"
    finally:
        portal.stop()
