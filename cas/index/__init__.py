"""The LMDB index: a rebuildable, queryable view of packs and log.

Layer L2: the only place that imports lmdb (in ``db.py``).
"""
