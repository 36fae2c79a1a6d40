"""What a hotplate binary says about itself: `<binary> describe --json`
(main.c, profiling/describe.c).

The document has six lists: routes and admin_routes ({method, pattern,
flags}), statements ({id, name, kind, route, sample_args, sql}: the SQL the
server prepares, exactly), flags ({name, type, default, choices, doc,
values}), errors ({code, status, timeout, message}) and stats ({id, kind,
section, key, metric, labels, help}: each stat with its Prometheus metric
name). Reading them from the binary rather than parsing the C headers means
a load test or a test runs what the server runs, whatever the headers look
like.

Standard library only (the load tests import it).
"""

import json

from .process import ProcessError, run

KEYS = ("routes", "admin_routes", "statements", "flags", "errors", "stats")


class Description:
    """The parsed document (`doc`): its route lists as they are, the other
    lists indexed by name."""

    def __init__(self, doc):
        missing = [k for k in KEYS if k not in doc]
        if missing:
            raise ProcessError("describe --json lacks %s" % ", ".join(missing))
        self.doc = doc
        self.routes, self.admin_routes = doc["routes"], doc["admin_routes"]
        self.statements = {s["name"]: s for s in doc["statements"]}
        self.flags = {f["name"]: f for f in doc["flags"]}
        self.errors = {e["code"]: e for e in doc["errors"]}
        self.stats = {s["id"]: s for s in doc["stats"]}

    def sql(self, name):
        """The SQL of one named statement, with its $n parameters."""
        try:
            return self.statements[name]["sql"]
        except KeyError:
            raise ProcessError("the binary has no statement named %s" % name) from None

    def metric_names(self):
        """Every stat's Prometheus metric name, in the binary's order."""
        return [s["metric"] for s in self.doc["stats"]]


def describe(binary, timeout=60):
    """Runs `binary describe --json` and returns its Description; raises
    ProcessError when it fails or prints something that is not the document."""
    out = run([binary, "describe", "--json"], timeout, stderr=None)
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise ProcessError("%s describe --json printed no JSON: %s" % (binary, e)) from e
    if not isinstance(doc, dict):
        raise ProcessError("%s describe --json printed a %s, not an object" % (binary, type(doc).__name__))
    return Description(doc)
