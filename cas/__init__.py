"""cas: a local-first, content-addressed artifact store ("git for data").

Public surface: ``Repo``, ``Artifact``, ``ArtifactVersion`` and the errors in
``cas.errors``. Importing cas loads no heavy module; the API loads on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Repo", "Artifact", "ArtifactVersion", "init_repo", "open_repo", "__version__"]


def __getattr__(name: str):
    if name == "Repo":
        from cas.api.repo import Repo

        return Repo
    if name == "Artifact":
        from cas.api.artifact import Artifact

        return Artifact
    if name == "ArtifactVersion":
        from cas.api.version import ArtifactVersion

        return ArtifactVersion
    raise AttributeError(f"module 'cas' has no attribute {name!r}")


def open_repo(path=None):
    """Open the repository at ``path`` (see ``cas.Repo``)."""
    from cas.api.repo import Repo

    return Repo(path)


def init_repo(path=None, **kwargs):
    """Create and open a repository at ``path`` (see ``cas.Repo.init``)."""
    from cas.api.repo import Repo

    return Repo.init(path, **kwargs)
