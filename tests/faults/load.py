"""Bounded load for the fault suite: worker threads that send requests in a
loop until told to stop, a request budget is spent, or a time limit passes,
recording every outcome with its client-side start and end times.

Each worker keeps one requests.Session (one keep-alive connection, reopened
after an error), so the load looks like a set of independent clients.
"""

import threading
import time

import requests

from hplib.client import HTTP_TIMEOUT  # the same bound as every other request of the suites


class Outcome:
    __slots__ = ("t0", "t1", "tag", "status", "code", "headers", "body", "error")

    def __init__(self, t0, t1, tag, status=None, code=None, headers=None, body=None, error=None):
        self.t0, self.t1, self.tag = t0, t1, tag
        self.status, self.code, self.headers, self.body, self.error = status, code, headers, body, error

    @property
    def seconds(self):
        return self.t1 - self.t0


def _code(r):
    try:
        b = r.json()
    except ValueError:
        return None, None
    if isinstance(b, dict) and isinstance(b.get("error"), dict):
        return b["error"].get("code"), b
    return None, b


class Load:
    """Runs requests from `make(worker_index, n)` in `workers` threads.

    With `rate` (requests per second) the load is open-loop: requests are
    sent on a fixed schedule, whether or not earlier ones were answered, as
    long as a worker is free. Otherwise each worker sends its next request
    as soon as the last one was answered.

    make returns (tag, method, url, kwargs) for the worker's n-th request; the
    tag identifies it in the outcomes even when the request never got an
    answer. The run ends at stop(), after `max_requests` requests in all, or
    after `max_seconds`, whichever comes first; join() waits for the workers
    (each bounded by the HTTP timeout).
    """

    def __init__(self, make, workers, max_requests=100000, max_seconds=60.0, timeout=HTTP_TIMEOUT, rate=None):
        self.make = make
        self.rate = rate
        self.workers = workers
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.outcomes = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._issued = 0
        self._threads = []
        self.started = None

    def _next(self):
        with self._lock:
            if self._stop.is_set() or self._issued >= self.max_requests or time.monotonic() - self.started > self.max_seconds:
                return None
            self._issued += 1
            k = self._issued
        if self.rate is not None:
            # Open loop: the k-th request is due k/rate seconds after the
            # start, however long the earlier ones took; a late worker sends
            # at once. Waiting for a due time is pacing, not a fake delay.
            delay = self.started + (k - 1) / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        return k

    def _worker(self, idx):
        s = requests.Session()
        n = 0
        while self._next() is not None:
            tag, method, url, kw = self.make(idx, n)
            t0 = time.monotonic()
            try:
                r = s.request(method, url, timeout=self.timeout, allow_redirects=False, **kw)
                code, body = _code(r)
                o = Outcome(t0, time.monotonic(), tag, r.status_code, code, r.headers, body)
            except requests.RequestException as e:
                o = Outcome(t0, time.monotonic(), tag, error=repr(e))
                s.close()
                s = requests.Session()
            with self._lock:
                self.outcomes.append(o)
            n += 1
        s.close()

    def start(self):
        self.started = time.monotonic()
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()

    def join(self, timeout=HTTP_TIMEOUT + 30):
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "load workers did not finish"
        return self.outcomes

    def run(self):
        """Starts, waits for the budget or the time limit, and returns the outcomes."""
        self.start()
        return self.join(self.max_seconds + self.timeout + 30)

    def snapshot(self):
        with self._lock:
            return list(self.outcomes)

    def count(self, pred):
        with self._lock:
            return sum(1 for o in self.outcomes if pred(o))


def wait_until(pred, timeout, interval=0.05):
    """Polls pred() until it is true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)
