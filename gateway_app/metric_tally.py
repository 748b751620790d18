"""Prometheus updates made on every request, added up in the worker and written in batches.

In multiprocess mode (gunicorn) each counter increment and each histogram observation is
a locked write to a memory-mapped file after a getpid() check: about a microsecond
apiece, four of them on every request. The request path adds to plain numbers here
instead; a background thread (a greenlet under gevent) writes them to the Prometheus
series every ``interval`` seconds, a scrape writes this worker's before it reads
(blueprints/ops.py), and so does a worker that exits. Another worker's requests thus
reach /metrics at most ``interval`` seconds late.
"""
import atexit
import bisect
import os
import threading
import time

from .locks import section_lock


def add_observations(histogram, total, per_bucket):
    """Add many observations to a prometheus_client Histogram child at once.

    prometheus_client has no call for that; its ``observe`` adds the amount to ``_sum``
    and one to the first bucket of ``_buckets`` whose bound holds it, and that is done
    here with the counts (tests/test_metric_tally.py compares the two).
    """
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, per_bucket):
        if count:
            bucket.inc(count)


class MetricTally:
    def __init__(self, interval=1.0):
        self.interval = interval
        self.lock = section_lock()   # dict updates only
        self.counts = {}          # counter child -> increments not yet written
        self.observations = {}    # histogram child -> [sum, count per bucket]
        self.bounds = {}          # histogram child -> its bucket upper bounds
        self.flusher = None
        os.register_at_fork(after_in_child=self.forget_parent)

    def forget_parent(self):
        """A forked child writes its own counts, not what its parent had pending."""
        self.counts, self.observations, self.flusher = {}, {}, None
        self.lock = section_lock()   # dict updates only

    def inc(self, counter):
        with self.lock:
            self.counts[counter] = self.counts.get(counter, 0) + 1
        if self.flusher is None:
            self.start_flusher()

    def count_and_observe(self, counter, histogram, amount):
        """``counter.inc()`` and ``histogram.observe(amount)``, written later."""
        bounds = self.bounds.get(histogram)
        if bounds is None:
            bounds = self.bounds[histogram] = list(histogram._upper_bounds)
        bucket = bisect.bisect_left(bounds, amount)   # the first bound >= amount, as observe
        with self.lock:
            self.counts[counter] = self.counts.get(counter, 0) + 1
            pending = self.observations.get(histogram)
            if pending is None:
                pending = self.observations[histogram] = [0.0, [0] * len(bounds)]
            pending[0] += amount
            pending[1][bucket] += 1
        if self.flusher is None:
            self.start_flusher()

    def flush(self):
        """Write what is pending to the Prometheus series."""
        with self.lock:
            counts, self.counts = self.counts, {}
            observations, self.observations = self.observations, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, (total, per_bucket) in observations.items():
            add_observations(histogram, total, per_bucket)

    def start_flusher(self):
        self.flusher = threading.Thread(target=self.flush_forever, name="metric-tally", daemon=True)
        self.flusher.start()
        atexit.register(self.flush)

    def flush_forever(self):
        while True:
            time.sleep(self.interval)
            self.flush()


# one per process, as the Prometheus series it writes to
tally = MetricTally()
