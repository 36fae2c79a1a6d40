"""Unit tests of tests/hplib/describe.py, which gives the harness's pgbench
ceilings (loadtests/bench_ceilings.py) the statements' SQL: on fake binaries
(its error paths, always run) and on the built server (HOTPLATE_BIN, under
make test)."""

import json
import os

import pytest

from hplib.describe import KEYS, describe
from hplib.process import ProcessError

BIN = os.environ.get("HOTPLATE_BIN")
DOC = {"routes": [{"method": "GET", "pattern": "/healthz", "flags": []}], "admin_routes": [],
       "statements": [{"id": 0, "name": "menu_get", "kind": "read", "route": None, "sample_args": ["1"], "sql": "SELECT $1"}],
       "flags": [{"name": "menu_cache", "type": "choice", "default": "redis"}], "errors": [{"code": "bad_json", "status": 400}],
       "stats": [{"id": "pool_acquired", "metric": "hotplate_db_pool_acquired_total"}]}


def fake(tmp_path, out, rc=0):
    """A binary that answers `describe --json` with `out` and exit status rc."""
    (tmp_path / "out").write_text(out)
    p = tmp_path / "fake-hotplate"
    p.write_text('#!/bin/sh\n[ "$1 $2" = "describe --json" ] || exit 9\ncat "%s"\nexit %d\n' % (tmp_path / "out", rc))
    p.chmod(0o755)
    return str(p)


def test_describe_indexes_the_document(tmp_path):
    d = describe(fake(tmp_path, json.dumps(DOC)))
    assert d.sql("menu_get") == "SELECT $1" and d.statements["menu_get"]["kind"] == "read"
    assert d.routes == DOC["routes"] and d.flags["menu_cache"]["default"] == "redis" and d.errors["bad_json"]["status"] == 400
    assert d.metric_names() == ["hotplate_db_pool_acquired_total"]
    with pytest.raises(ProcessError, match="no statement named nope"):
        d.sql("nope")


@pytest.mark.parametrize("out, rc, match", [
    ("not json", 0, "printed no JSON"),
    ("[]", 0, "not an object"),
    (json.dumps({k: v for k, v in DOC.items() if k != "stats"}), 0, "lacks stats"),
    (json.dumps(DOC), 1, "exited with 1"),
])
def test_describe_refuses_what_is_not_the_document(tmp_path, out, rc, match):
    with pytest.raises(ProcessError, match=match):
        describe(fake(tmp_path, out, rc))


@pytest.mark.skipif(not BIN, reason="needs the built server (HOTPLATE_BIN, as make test sets it)")
def test_describe_of_the_built_server():
    d = describe(BIN)
    assert set(d.doc) >= set(KEYS)
    assert len(d.statements) >= 20
    for s in d.doc["statements"]:
        assert {"name", "kind", "route", "sample_args", "sql"} <= set(s) and s["sql"].strip(), s
    # The statements the ceilings run, with the parameters bench_ceilings.py replaces.
    assert "$1" in d.sql("menu_get")
    assert "$17" in d.sql("order_insert") and "$2" in d.sql("stock_decrement")
    assert all(m.startswith("hotplate_") for m in d.metric_names())
