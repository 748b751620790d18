"""A remote service instance for the proxy tests, served by gunicorn (conf/gunicorn.conf.py,
gevent) on loopback: ``gunicorn tests.support.upstream_app:app``.

- ``/health``: ok
- ``/download?bytes=N[&chunked=1]`` (or any path with ``bytes``): N bytes of a repeating
  pattern, in 64 KiB blocks, with a Content-Length (none with ``chunked=1``, so gunicorn
  sends it chunked); ``X-Peer`` names the client port of the connection
- ``/upload``: reads the body block by block; answers its length, SHA-256 and how it came
- ``/status/<code>``: answers that status (204 and 304 with no body)
- ``/slow?seconds=S``: answers after S seconds
- anything else: echoes the method, path, query and headers it received, and the
  client port of the connection it came on; with ``tagged=1`` in the query, also an
  ETag and an X-Cache of the instance's own
"""
import hashlib
import json
import time

from werkzeug.wrappers import Request, Response

BLOCK = 64 * 1024
PATTERN = bytes(range(256)) * (BLOCK // 256)


def pattern_of(size):
    full, rest = divmod(size, BLOCK)
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


@Request.application
def app(request):
    path = request.path
    if path == "/health":
        return Response("ok")
    if path.endswith("/download") or "bytes" in request.args:
        size = int(request.args.get("bytes", "0"))
        response = Response(pattern_of(size), mimetype="application/octet-stream", direct_passthrough=True,
                            headers={"X-Peer": str(request.environ.get("REMOTE_PORT"))})
        if request.args.get("chunked") != "1":
            response.headers["Content-Length"] = str(size)
        return response
    if path.endswith("/upload"):
        digest, received = hashlib.sha256(), 0
        stream = request.stream
        while block := stream.read(BLOCK):
            digest.update(block)
            received += len(block)
        return Response(json.dumps({
            "bytes": received, "sha256": digest.hexdigest(),
            "content_length": request.headers.get("Content-Length"),
            "transfer_encoding": request.headers.get("Transfer-Encoding")}), mimetype="application/json")
    if "/status/" in path:
        status = int(path.rsplit("/", 1)[1])
        if status in (204, 304):
            return Response(status=status, headers={"ETag": '"v1"'})
        return Response(json.dumps({"status": status}), status=status, mimetype="application/json")
    if path.endswith("/slow"):
        time.sleep(float(request.args.get("seconds", "1")))
        return Response("late")
    own = {"ETag": '"instance-tag"', "X-Cache": "HIT"} if request.args.get("tagged") == "1" else {}
    return Response(json.dumps({"method": request.method, "path": path,
                                "query": request.query_string.decode(), "headers": dict(request.headers),
                                "peer": request.environ.get("REMOTE_PORT")}),
                    mimetype="application/json", headers={"X-Upstream": "yes", "Content-Language": "en", **own})
