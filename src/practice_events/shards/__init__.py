"""Sharding by district: several event stores behind one deployment (docs/sharding.md).

:mod:`~practice_events.shards.routing` holds the routing rule and the shard
map, :mod:`~practice_events.shards.router` the router that splits batches by
shard, :mod:`~practice_events.shards.cli` the ``practice-events shards``
commands. The router is built by ``bootstrap.build_ingest``.
"""

from practice_events.shards.routing import (
    BROADCAST_KINDS,
    DISTRICT_ATTRIBUTE,
    CrossShardReferenceError,
    Shard,
    ShardMap,
)

__all__ = [
    "BROADCAST_KINDS",
    "DISTRICT_ATTRIBUTE",
    "CrossShardReferenceError",
    "Shard",
    "ShardMap",
]
