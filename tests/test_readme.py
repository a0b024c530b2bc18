"""The README's Python example runs as written."""

import os
import re
from pathlib import Path

from tests.conftest import write_tree

ROOT = Path(__file__).resolve().parent.parent


def test_readme_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    write_tree(tmp_path / "data" / "mnist", {"train/a.png": b"a", "train/bad.png": b"bad", "test/b.png": b"b"})
    (tmp_path / "README.md").write_text("# readme\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert sorted(os.listdir(tmp_path / "out" / "train")) == ["a.png", "bad.png"]
    assert namespace["report"].ok


def test_readme_lineage_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    first, second = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    write_tree(tmp_path / "data" / "mnist", {"train/a.png": b"a", "train/bad.png": b"bad", "test/b.png": b"b"})
    (tmp_path / "README.md").write_text("# readme\n")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(first + second, "README.md", "exec"), namespace)
    link, model = namespace["link"], namespace["model"]
    assert link.state == "DELETED" and model.state == "COMMITTED" and model.semver == "1.0.0"
    assert model.logged_by() == namespace["run"] and model.logged_by().state == "finished"
