"""What rr takes from inside Dagster (rr_assets/dagster_internals.py) still works as rr reads it:
on a real, ephemeral instance, a never-materialised asset is missing, a materialised one fresh,
and a changed code version makes the asset stale for its code, and its child stale for its parent
once the parent is materialised again.
A Dagster release that moves or changes these fails here, not in a user's `rr run`."""

import dagster as dg
import pytest

from rr_assets.dagster_internals import StaleStatus, stale_resolver
from rr_assets.refresh import why_stale

pytestmark = pytest.mark.unit


def graph(version: str) -> list[dg.AssetsDefinition]:
    @dg.asset(code_version=version)
    def parent() -> int:
        return 1

    @dg.asset(deps=[parent], code_version="1")
    def child() -> None:
        return None

    return [parent, child]


def test_the_staleness_resolver_reads_missing_fresh_and_stale_with_causes():
    instance = dg.DagsterInstance.ephemeral()
    parent, child = dg.AssetKey("parent"), dg.AssetKey("child")
    before = dg.Definitions(assets=graph("1")).resolve_asset_graph()
    assert stale_resolver(instance, before).get_status(parent, None) == StaleStatus.MISSING
    assert why_stale(stale_resolver(instance, before), child, None) == "never materialised"
    assert dg.materialize(graph("1"), instance=instance).success
    assert why_stale(stale_resolver(instance, before), parent, None) is None
    after = dg.Definitions(assets=graph("2")).resolve_asset_graph()
    assert why_stale(stale_resolver(instance, after), parent, None) == "its code or settings changed"
    assert dg.materialize(graph("2"), instance=instance, selection="parent").success
    assert why_stale(stale_resolver(instance, after), parent, None) is None
    assert why_stale(stale_resolver(instance, after), child, None) == "upstream parent changed"
