"""The sensors and the weekly schedule, evaluated against a real (ephemeral) Dagster instance."""

import datetime
import os
import shutil
import time

import dagster as dg
import pytest

from rr_assets.automation import build_collection_sensor, build_weekly_refresh
from rr_assets.config import load_config
from rr_assets.core.collections import CollectionSource
from rr_assets.definitions import build_definitions
from tests.conftest import DEMO_DIR, write_config

pytestmark = pytest.mark.integration


def test_collection_sensor_observes_new_and_changed_collections(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO_DIR, folder)
    config = load_config(write_config(tmp_path / "config.yaml", tmp_path / "home", tmp_path / "mlruns",
                                      collections={"demo": {"path": str(folder)}}))
    instance = dg.DagsterInstance.ephemeral()
    sensor = build_collection_sensor((CollectionSource("demo", str(folder)),))

    first = sensor(dg.build_sensor_context(instance=instance))
    assert [r.tags["rr/changed_collections"] for r in first.run_requests] == ["demo"]
    assert first.dynamic_partitions_requests[0].partition_keys == ["demo"]
    instance.add_dynamic_partitions("collection", ["demo"])
    build_definitions(config).resolve_job_def("rr_observe_collections").execute_in_process(instance=instance)

    unchanged = sensor(dg.build_sensor_context(instance=instance))
    assert not unchanged.run_requests

    queries = folder / "queries.jsonl"
    queries.write_text(queries.read_text() + '{"_id": "new-q", "text": "a new question"}\n')
    later = time.time() + 5
    os.utime(queries, (later, later))
    changed = sensor(dg.build_sensor_context(instance=instance))
    assert [r.tags["rr/changed_collections"] for r in changed.run_requests] == ["demo"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key


def test_weekly_refresh_requests_every_collection():
    schedule = build_weekly_refresh(["a", "b"])
    assert schedule.cron_schedule == "0 3 * * 1"
    requests = schedule(dg.build_schedule_context(scheduled_execution_time=datetime.datetime(2026, 11, 30, 3)))
    assert sorted(r.partition_key for r in requests) == ["a", "b"]
