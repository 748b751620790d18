# gevent must patch before anything imports ssl, socket or threading (docs/architecture.md).
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

# Prometheus multiprocess mode: every worker writes its own files, a scrape aggregates.
# Set before the app (and prometheus_client) is imported by the workers.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gateway-prometheus-")

_redis = os.environ.get("REDIS_TLS_URL") or os.environ.get("REDIS_URL")

bind = f"{os.environ.get('GATEWAY_BIND', '[::]')}:{os.environ.get('PORT', '8000')}"
# Without Redis every store is in-process, so a second worker would not share limits.
workers = int(os.environ.get("WEB_CONCURRENCY", "2" if _redis else "1"))
# gevent, with problem+json for the requests gunicorn itself refuses (414, 431, 400)
worker_class = "gateway_app.gunicorn_worker.ProblemGeventWorker"
worker_connections = int(os.environ.get("GATEWAY_WORKER_CONNECTIONS", "200"))
# Only a heartbeat for gevent workers: every outbound call carries its own timeout.
timeout = 30
# Under the platform's 30 s shutdown window.
graceful_timeout = 25
# Longer than the platform router's idle timeout (Heroku: 90 s) so it never reuses a closed socket.
keepalive = 95
forwarded_allow_ips = "*"
accesslog = None        # the gateway writes its own JSON access log
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")


def on_starting(server):
    """Validate the policy once in the master: a bad file stops the start with one message."""
    from gateway_app.policy import PolicyError, load_policy
    try:
        load_policy()
    except PolicyError as exc:
        print(f"gateway: cannot start: {exc}", file=sys.stderr)
        sys.exit(1)
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    # stale files from an earlier run would be counted again
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, exist_ok=True)


def post_worker_init(worker):
    """The app is loaded: what it built lives as long as the worker, so the cyclic
    garbage collector stops walking it (a full pass over it cost ~90 ms every few
    thousand requests; bench/RESULTS.md)."""
    import gc
    gc.freeze()


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)
