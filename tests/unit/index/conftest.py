"""An open IndexDb in a temporary directory."""

import pytest

from cas.index.db import open_index


@pytest.fixture
def db(tmp_path):
    d = open_index(str(tmp_path / "index"))
    yield d
    d.close()
