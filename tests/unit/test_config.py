import pytest

from rr_assets.config import DEMO_CONFIG, ConfigError, load_config

pytestmark = pytest.mark.unit


def test_demo_config_resolves_collection_paths():
    config = load_config(DEMO_CONFIG)
    assert config.collection("demo").path.endswith("resources/collections/demo")
    assert config.retrieval.k1 == 0.9 and config.retrieval.b == 0.4


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("collections: {x: {path: .}}\nteacher: {temprature: 0.5}\n")
    with pytest.raises(ConfigError, match=r"c.yaml: teacher: unknown keys \['temprature'\]"):
        load_config(path)
