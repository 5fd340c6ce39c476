"""The terminal's Dagster log: a run that stopped only because a promotion check held the champion
back prints no error event (rr says why itself); any other failed blocking check still does."""

import dagster as dg
import pytest

from rr_assets.run_logs import console_logger

pytestmark = pytest.mark.unit


def _run_with_failing_check(check_name: str) -> None:
    @dg.asset
    def champion_candidate() -> int:
        return 1

    @dg.asset_check(asset=champion_candidate, name=check_name, blocking=True)
    def gate() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=False)

    @dg.asset(deps=[champion_candidate])
    def champion() -> int:
        return 2

    defs = dg.Definitions(assets=[champion_candidate, champion], asset_checks=[gate],
                          loggers={"console": console_logger})
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        raise_on_error=False, run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}})
    assert not result.success


def test_a_held_promotion_prints_no_error(capfd):
    _run_with_failing_check("beats_champion")
    err = capfd.readouterr().err
    assert "champion_candidate" in err and "DagsterAssetCheckFailedError" not in err


def test_another_failed_blocking_check_still_prints_its_error(capfd):
    _run_with_failing_check("rows_are_valid")
    err = capfd.readouterr().err
    assert "DagsterAssetCheckFailedError" in err and "rows_are_valid" in err
