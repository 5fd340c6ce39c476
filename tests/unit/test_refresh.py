"""What `rr run` says about a step's checks, on a real (ephemeral) Dagster instance."""

import dagster as dg
import pytest

from rr_assets.refresh import failed_checks

pytestmark = pytest.mark.unit


@dg.asset(check_specs=[dg.AssetCheckSpec("learned", asset="toy"), dg.AssetCheckSpec("fast", asset="toy")])
def toy():
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(check_name="learned", passed=False, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"best_step": 0, "dev": 0.123456, "curve": dg.MetadataValue.json([1, 2]),
                                        "missing": None})
    yield dg.AssetCheckResult(check_name="fast", passed=True)


def test_a_warning_check_that_did_not_pass_is_named_with_its_scalar_facts():
    result = dg.materialize([toy], instance=dg.DagsterInstance.ephemeral())
    assert result.success
    assert failed_checks(result) == ["toy: check learned did not pass (best_step 0, dev 0.1235)"]
