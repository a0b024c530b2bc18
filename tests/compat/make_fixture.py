"""Write tests/compat/fixtures/repo-v1-basic.tar.gz: a frozen format-v1 repository.

Run once per format version: ``python tests/compat/make_fixture.py``. The archive
holds ``config``, ``packs/`` and ``log/`` only (no LMDB index), so opening it
also exercises the rebuild. ``EXPECTED`` is what every later cas must read back.
"""

from __future__ import annotations

import os
import tarfile
import tempfile

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "repo-v1-basic.tar.gz")

V0 = {"a.txt": b"alpha\n", "dir/b.bin": bytes(range(256)) * 40, "dir/sub/c.json": b'{"k": 1}'}
V1 = {"a.txt": b"alpha v1\n", "dir/b.bin": bytes(range(256)) * 40, "new.txt": b"new"}
EXPECTED = {"v0": V0, "v1": V1}


def main() -> None:
    import cas
    from cas.format.chunker import ChunkerParams

    with tempfile.TemporaryDirectory() as tmp:
        repo = cas.Repo.init(os.path.join(tmp, "r"), chunker=ChunkerParams(256, 1024, 4096))
        for version, files in EXPECTED.items():
            art = cas.Artifact("data", "dataset", description=f"fixture {version}", metadata={"v": version},
                               repo=repo)
            for path, data in files.items():
                with art.new_file(path, mode="wb") as f:
                    f.write(data)
            repo.log_artifact(art, aliases=["best"] if version == "v0" else [], tags=[version])
        repo.close()
        store = os.path.join(tmp, "r", ".cas")
        os.makedirs(os.path.dirname(FIXTURE), exist_ok=True)
        with tarfile.open(FIXTURE, "w:gz") as tar:
            for part in ("config", "packs", "log"):
                tar.add(os.path.join(store, part), arcname=f"repo/.cas/{part}")


if __name__ == "__main__":
    main()
