"""What the read endpoints' tests share: both databases, answers never read from a cache,
the ids of a page."""
import pytest

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "mysql"], indirect=True)
# The tests insert rows behind the API's back (no domain event): never read a cached copy.
FRESH = {"Cache-Control": "no-cache"}


def get(tenant, path, **params):
    """``path`` with ``params`` as its query string, answered afresh."""
    return tenant.get(path, query_string=params, headers=FRESH)


def ids(response):
    """The ids of a 200 page's items, in order."""
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["data"]]
