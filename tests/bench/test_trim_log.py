"""hplib.process.trim_log: a benchmark's server log is cut to its head and its
tail between load runs, and the server's next write lands after what is kept.

The writer here is a child process holding the file open O_APPEND, as
hplib.process.Process.start() gives it to the server, so what is checked is
the file offset the kernel gives that writer after the cut, not the helper's
own arithmetic.
"""
import subprocess
import sys

from hplib import process

WRITER = r"""
import sys
f = open(sys.argv[1], "ab", buffering=0)
for line in sys.stdin:
    f.write(line.encode())
    print("ok", flush=True)
"""


def lines(prefix, n):
    return b"".join(b"%s %06d\n" % (prefix, i) for i in range(n))


def test_a_long_log_keeps_its_head_and_tail_and_the_writer_appends_after_them(tmp_path):
    path = tmp_path / "server.log"
    w = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        path.write_bytes(lines(b"start", 100))  # 1,300 bytes
        with open(path, "ab") as f:
            f.write(lines(b"request", 10000))  # 150,000 bytes
        before = path.stat().st_size
        cut = process.trim_log(str(path), limit=100_000, head=1000, keep=2000)
        data = path.read_bytes()
        assert cut > 0 and len(data) < 4000 and before - cut < 4000
        split = data.split(b"\n")
        head, marker = split[:76], split[76]
        assert head[0] == b"start 000000" and head[-1] == b"start 000075"  # whole lines of the first 1,000 bytes
        assert marker == b"--- %d bytes of this log were cut here by the harness (hplib.process.trim_log) ---" % cut
        assert data.endswith(b"request 009999\n")
        assert b"request 009900\n" in data and b"request 009000\n" not in data
        # Whole lines only, and nothing but the cut between head and tail.
        for line in split[77:-1]:
            assert line.startswith(b"request ") and len(line) == 14, line
        # The writer's file offset follows the cut: its next line comes last, not at its old offset past a hole.
        w.stdin.write("after the cut\n")
        w.stdin.flush()
        assert w.stdout.readline().strip() == "ok"
        after = path.read_bytes()
        assert after == data + b"after the cut\n" and b"\0" not in after
    finally:
        w.stdin.close()
        w.wait(10)


def test_a_short_log_is_left_alone(tmp_path):
    path = tmp_path / "server.log"
    path.write_bytes(lines(b"request", 100))
    assert process.trim_log(str(path), limit=100_000, head=1000, keep=2000) == 0
    assert path.read_bytes() == lines(b"request", 100)
    assert process.trim_log(str(tmp_path / "missing.log")) == 0
