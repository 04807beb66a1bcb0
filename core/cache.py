"""Where this machine, and this node of a Ray cluster, keep what they derive: converted weights,
content hashes, built-in corpora, downloaded stages. DMT_CACHE overrides the root (tests point it
at a temporary folder).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_root() -> Path:
    """Where converted weights live; DMT_CACHE overrides (tests point it at a temp dir)."""
    return Path(os.environ.get("DMT_CACHE", Path.home() / ".cache" / "dmt-sweep"))


def node_cache_root() -> Path:
    """This node's own cache: `cache_root()/nodes/<Ray node id>` in a process of a Ray cluster,
    `cache_root()` elsewhere. Nodes never share a cache folder, even where they share a disk (the
    simulated cluster's nodes do), so nothing can rely on another node's local copy."""
    ray = sys.modules.get("ray")  # never imported here for it: dry runs start no Ray
    if ray is not None and ray.is_initialized():
        # The whole id: the simulated cluster's ids differ only in their last digits.
        return cache_root() / "nodes" / ray.get_runtime_context().get_node_id()
    return cache_root()
