"""Active selection: items ordered by a reward model's |margin| or an ensemble's spread of margins."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from annotate.helpers import items
from conftest import save_tiny_model
from rewardkit.annotate.formats import Item
from rewardkit.annotate.selection import certainties, least_certain_first, order_by_model
from rewardkit.annotate.store import AnnotationStore
from rewardkit.cli.annotate import order_with_model
from rewardkit.models.ensemble import RewardEnsemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization


@pytest.fixture(scope="module")
def tiny_models(llama_dir):
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        rm = RewardModel.from_backbone(str(llama_dir), max_length=64)
        rm.spec = rm.spec.model_copy(update={"normalization": Normalization(mean=0.1 * seed, std=0.5 + seed, n=10)})
        models.append(rm)
    return models


def test_a_reward_models_certainty_is_its_absolute_margin(tiny_models):
    rm, sample = tiny_models[0], items(5)
    first = rm.score([i.prompt for i in sample], [i.responses[0] for i in sample])
    second = rm.score([i.prompt for i in sample], [i.responses[1] for i in sample])
    expected = [abs(a - b) for a, b in zip(first, second, strict=True)]
    assert certainties(rm, sample) == pytest.approx(expected, abs=1e-5)


def test_an_ensembles_certainty_is_minus_the_spread_of_its_members_margins(tiny_models):
    ensemble, sample = RewardEnsemble(tiny_models), items(4)
    members = [m.score([i.prompt for i in sample] * 2, [i.responses[0] for i in sample]
                       + [i.responses[1] for i in sample], normalize=True) for m in tiny_models]
    expected = [-statistics.pstdev([m[k] - m[4 + k] for m in members]) for k in range(4)]
    assert certainties(ensemble, sample) == pytest.approx(expected, abs=1e-5)


def test_least_certain_first_puts_unscorable_items_last():
    sample = [Item(f"i{k}", "q", ("a", "b")) for k in range(4)]
    assert least_certain_first(sample, [0.5, math.nan, 0.1, 0.5]) == ["i2", "i0", "i3", "i1"]


def test_the_store_serves_in_the_models_order_and_gold_keeps_its_place(tmp_path, tiny_models):
    store = AnnotationStore(tmp_path / "r.sqlite")
    store.add_items(items(6) + [Item("g", "gold?", ("right", "wrong"), gold=1)])
    store.spread_gold()
    gold_place = [i.id for i in store.items()].index("g")
    assert order_by_model(store, tiny_models[0]) == 6
    order = [i.id for i in store.items()]
    assert order.index("g") == gold_place
    scores = dict(zip([f"p{k}" for k in range(6)], certainties(tiny_models[0], items(6)), strict=True))
    served = [item_id for item_id in order if item_id != "g"]
    assert [scores[i] for i in served] == sorted(scores.values())


def test_serve_select_with_orders_the_round_by_a_saved_model(tmp_path, llama_dir, capsys):

    directory = save_tiny_model(llama_dir, tmp_path / "rm", seed=3, normalization=None)
    store = AnnotationStore(tmp_path / "r.sqlite")
    store.add_items(items(5))
    order_with_model(store, directory, 4, "fp32")
    scores = dict(zip([f"p{k}" for k in range(5)], certainties(RewardModel.from_pretrained(directory), items(5)),
                      strict=True))
    assert [scores[i.id] for i in store.items()] == pytest.approx(sorted(scores.values()), abs=1e-5)
    assert "ordered 5 items" in capsys.readouterr().err
