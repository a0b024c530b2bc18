"""The Python API: Repo, Artifact drafts, ArtifactVersion; one module per use case.

Layer L3: calls index and storage; never prints or exits.
"""
