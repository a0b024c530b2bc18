"""CLI rendering: sizes, JSON of non-JSON values, and progress only on a terminal."""

import io
import json

from cas.cli import render


class FakeTty(io.StringIO):
    def isatty(self):
        return True


def test_human_size():
    assert render.human_size(0) == "0 B"
    assert render.human_size(1023) == "1023 B"
    assert render.human_size(1536) == "1.5 KiB"
    assert render.human_size(5 * 1024**3) == "5.0 GiB"
    assert render.human_size(None) == "-"


def test_print_json_renders_bytes_and_objects(capsys):
    class Finding:
        def to_dict(self):
            return {"kind": "x"}

    render.print_json({"b": b"\x01\xff", "f": Finding(), "t": (1, 2)})
    assert json.loads(capsys.readouterr().out) == {"b": "01ff", "f": {"kind": "x"}, "t": [1, 2]}


def test_progress_draws_on_a_terminal_and_clears(monkeypatch):
    tty = FakeTty()
    monkeypatch.setattr(render.sys, "stderr", tty)
    p = render.Progress("downloading")
    p(3, 3, 2048)
    p.close()
    out = tty.getvalue()
    assert "downloading: 3/3 (2.0 KiB)" in out and out.endswith("\r")


def test_progress_is_silent_when_not_a_terminal(monkeypatch):
    pipe = io.StringIO()
    monkeypatch.setattr(render.sys, "stderr", pipe)
    p = render.Progress("downloading")
    p(1, 1)
    p.close()
    assert pipe.getvalue() == ""


def test_json_list_streams_exactly_what_print_json_prints(capsys):
    items = [{"path": "a\nb", "size": 1, "nested": {"x": [1, 2]}}, {"path": "é", "digest": b"\x01"}, {}]
    for n in (0, 1, 3):
        render.print_json(items[:n])
        whole = capsys.readouterr().out
        render.print_json_list(iter(items[:n]))
        assert capsys.readouterr().out == whole


def test_a_streamed_table_aligns_like_a_held_one(capsys):
    rows = [["a/b/c.txt", "1.0 KiB", "0123456789ab", ""], ["d", "12 B", "ba9876543210", ""]]
    with_ref = rows + [["r", "-", "-", "s3://bucket/key"]]
    header = ["PATH", "SIZE", "DIGEST", "REF"]
    for data, expect in ((rows, [r[:3] for r in rows]), (with_ref, with_ref)):
        render.table(expect, header if expect is with_ref else header[:3])
        held = capsys.readouterr().out
        for hold in (10, 1):  # all rows held / measured in a first pass
            render.table_stream(lambda: iter(data), header, hold=hold, optional=(3,))
            assert capsys.readouterr().out == held
