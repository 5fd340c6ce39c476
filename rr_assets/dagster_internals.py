"""The one place rr reaches inside Dagster: its staleness resolver (what the UI's "stale" badge and
its causes come from), which has no public Python API. tests/unit/test_dagster_internals.py fails
when Dagster changes what this module uses."""

from __future__ import annotations

import dagster as dg
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleCauseCategory, StaleStatus
from dagster._time import get_current_datetime

__all__ = ["StaleCauseCategory", "StaleStatus", "stale_resolver"]


def stale_resolver(instance: dg.DagsterInstance, asset_graph) -> CachingStaleStatusResolver:
    """Dagster's staleness of each asset partition as of now: `get_status(key, partition)` and
    `get_stale_causes(key, partition)`; it caches, so build a new one after anything runs."""
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(), last_event_id=None),
                          instance=instance, asset_graph=asset_graph)
    return CachingStaleStatusResolver(instance=instance, asset_graph=asset_graph, loading_context=view)
