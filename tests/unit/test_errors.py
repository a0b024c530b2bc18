"""The error hierarchy: one root, unique exit codes, docs/errors.md current."""

from pathlib import Path

import cas.errors as E

ROOT = Path(__file__).resolve().parents[2]


def _classes():
    return [c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.CasError)]


def test_exit_codes_are_unique_per_class():
    codes = {}
    for c in _classes():
        if c.exit_code in (1, 2):  # shared meanings: findings, usage
            continue
        assert c.exit_code not in codes, (c, codes.get(c.exit_code))
        codes[c.exit_code] = c


def test_lookup_errors_are_builtin_lookups_too():
    assert issubclass(E.EntryNotFound, KeyError)
    assert issubclass(E.NothingToRemove, FileNotFoundError)
    assert issubclass(E.VersionNotFound, LookupError)
    assert str(E.EntryNotFound("a/b", "ds")) == E.EntryNotFound("a/b", "ds").message


def test_messages_name_the_thing_at_fault():
    assert "x/../y" in str(E.UnsafePath("x/../y", "has a '..' segment"))
    err = E.DownloadConflict("/r", ["a", "b"])
    assert err.paths == ["a", "b"] and "a, b" in str(err) and "OVERWRITE" in str(err)
    v = E.VerifyError("/r", ["m"], ["x"], ["u"])
    assert "1 missing: m" in str(v) and "1 modified: x" in str(v) and "1 unexpected: u" in str(v)


def test_errors_doc_is_current():
    assert (ROOT / "docs" / "errors.md").read_text() == E.render_errors_markdown()
