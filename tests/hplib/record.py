"""Rows for docs/RELIABILITY.md: tests/faults/record.py runs the fault suites
with HOTPLATE_FAULTS_RECORD naming a JSON-lines file, and each fault test
appends one row to it (fault, load, requests, orders_checked, lost,
duplicates, and any more fields, which the document shows as details).

Standard library only. Without HOTPLATE_FAULTS_RECORD a suite may give a
default path of its own (tests/faults keeps one in its stack's home), or the
row is dropped: a test never depends on being recorded.
"""

import json
import os


def append_row(test, path=None, **row):
    """Appends row, named after test, to path or $HOTPLATE_FAULTS_RECORD; returns the path written, or None."""
    path = path or os.environ.get("HOTPLATE_FAULTS_RECORD")
    if not path:
        return None
    row.setdefault("test", test)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, sort_keys=True) + "\n")
    return path
