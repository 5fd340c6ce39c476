import pytest

from rr_assets.core.injection import PAYLOADS, label_shift, probe_pairs, with_payload
from rr_assets.core.prompts import load_variant
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("variant_name", ["default", "chat-json"])
def test_injected_text_stays_inside_the_document_delimiters(variant_name):
    variant = load_variant(PROJECT_ROOT / "resources" / "prompts", variant_name)
    for payload in PAYLOADS:
        document, _ = variant.prepare_document(with_payload("Plain text about yeast.", payload))
        prompt = variant.render("direct", query="Why?", document=document)
        tail = prompt[prompt.rindex("<document>"):]
        marker = "Ignore" if "Ignore" in payload else "SYSTEM"
        assert tail.count("</document>") == 1 and tail.index(marker) < tail.index("</document>")


def test_probe_sample_is_seeded_and_below_the_top_label():
    judged = [(f"q{i}", f"d{i}", i % 3) for i in range(30)]
    pairs = probe_pairs(judged, max_label=2, size=6, seed=3)
    assert len(pairs) == 6 and all(p.clean_label < 2 for p in pairs)
    assert pairs == probe_pairs(judged, max_label=2, size=6, seed=3)
    assert {p.payload for p in pairs} == set(PAYLOADS)


def test_label_shift():
    shift = label_shift([0, 1, 0, 1], [2, 1, None, 0], max_label=2)
    assert shift.pairs == 4 and shift.mean_shift == pytest.approx(0.25)
    assert shift.raised_share == pytest.approx(0.25) and shift.to_max_share == pytest.approx(0.25)
