"""tests/e2e/doctor_doc.py on canned text: what it pastes where, and how it refuses."""

import pytest

import doctor_doc

DOC = """# The doctor

These reports were produced by hand, long ago.

### The clean run

`tests/e2e/test_doctor.py`, server `doctor-clean`, no flag:

~~~markdown
old clean
~~~

### Lab 01

`tests/e2e/test_doctor.py`, server `doctor-menu-cache`, [lab 01](labs/01-menu-cache.md):

~~~markdown
old menu
report
~~~

A line after.
"""

CLEAN = "# hotplate doctor\n\nNo findings.\n\n## Observed routes\n\n| route |\n|---|\n"
MENU = "# hotplate doctor\n\n## 1. uncached hot read\n\n- **Fix**: cache it\n\n## Observed routes\n\n| route |\n"


def test_paste_replaces_each_block_and_keeps_the_routes_of_the_clean_run_only():
    new, seen = doctor_doc.paste(DOC, {"doctor-clean": CLEAN, "doctor-menu-cache": MENU, "doctor-other": "unused"})
    assert seen == ["doctor-clean", "doctor-menu-cache"]
    assert "old clean" not in new and "old menu" not in new
    assert "~~~markdown\n# hotplate doctor\n\nNo findings.\n\n## Observed routes\n\n| route |\n|---|\n~~~\n" in new
    assert "~~~markdown\n# hotplate doctor\n\n## 1. uncached hot read\n\n- **Fix**: cache it\n~~~\n" in new
    assert new.count("## Observed routes") == 1
    assert new.endswith("~~~\n\nA line after.\n")
    # Pasting again changes nothing.
    assert doctor_doc.paste(new, {"doctor-clean": CLEAN, "doctor-menu-cache": MENU})[0] == new


def test_a_missing_report_is_an_error():
    with pytest.raises(KeyError):
        doctor_doc.paste(DOC, {"doctor-clean": CLEAN})


def test_only_pastes_the_reports_at_hand_and_keeps_the_others():
    new, seen = doctor_doc.paste(DOC, {"doctor-menu-cache": MENU}, only=True)
    assert seen == ["doctor-menu-cache"]
    assert "old clean" in new and "old menu" not in new


def test_an_unclosed_block_is_an_error():
    with pytest.raises(ValueError):
        doctor_doc.paste(DOC.replace("old menu\nreport\n~~~\n", "old menu\n"), {"doctor-clean": CLEAN, "doctor-menu-cache": MENU})


def test_provenance_line_is_replaced_once():
    line = doctor_doc.provenance("abc1234", "2026-11-24")
    new = doctor_doc.PROVENANCE.sub(lambda _: line, DOC, count=1)
    assert "at commit abc1234, on 2026-11-24." in new and "long ago" not in new


def test_usage_errors_exit_2(tmp_path, capsys):
    assert doctor_doc.main([]) == 2
    assert doctor_doc.main([str(tmp_path / "missing")]) == 2
    assert doctor_doc.main([str(tmp_path), "--bogus"]) == 2
    # A directory without the doc's reports: refused, the doc untouched.
    with open(doctor_doc.DOC, encoding="utf-8") as f:
        before = f.read()
    assert doctor_doc.main([str(tmp_path)]) == 2
    with open(doctor_doc.DOC, encoding="utf-8") as f:
        assert f.read() == before
    capsys.readouterr()
