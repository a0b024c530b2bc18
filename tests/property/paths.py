"""Helpers shared by the tree property tests."""


def prefix_free(ps):
    """Drop paths that would make a file also a directory (keep shallower ones)."""
    out = []
    for p in sorted(set(ps), key=lambda s: (s.count("/"), s)):
        if not any(p.startswith(q + "/") for q in out):
            out.append(p)
    return out
