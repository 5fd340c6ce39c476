"""What `rr run` learns from a step's run (on a real, ephemeral Dagster instance), and the run
config it gives each executor."""

import dagster as dg
import pytest

from rr_assets.core.settings import ExecutionSettings
from rr_assets.runs import BROKER_ENV, outcome_of, run_config

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
    outcome = outcome_of(result)
    assert outcome.failed_checks == ("toy: check learned did not pass (best_step 0, dev 0.1235)",)
    assert outcome.success and not outcome.interrupted and not outcome.champion_kept and outcome.promoted is None


def test_each_executor_gets_its_config_and_a_broker_url_from_the_environment_stays_there(monkeypatch):
    assert "execution" not in run_config(ExecutionSettings(), verbose=False)
    multiprocess = run_config(ExecutionSettings(executor="multiprocess"), verbose=True)
    assert multiprocess["execution"]["config"]["multiprocess"]["max_concurrent"] >= 1
    assert multiprocess["loggers"]["console"]["config"]["log_level"] == "DEBUG"
    celery = ExecutionSettings(executor="celery", celery_broker="redis://broker:6379/0")
    assert run_config(celery, verbose=False)["execution"]["config"]["broker"] == "redis://broker:6379/0"
    monkeypatch.setenv(BROKER_ENV, "redis://:secret@broker:6379/0")
    config = run_config(celery, verbose=False)
    assert config["execution"]["config"] == {"broker": {"env": BROKER_ENV}, "backend": {"env": BROKER_ENV}}
    assert "secret" not in repr(config)
