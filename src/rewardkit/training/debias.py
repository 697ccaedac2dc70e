"""Training against known biases: source mixtures, length-balanced weights, and ODIN's disentangled length head.

    train_set, notes = rebalance_training_set(train_set, config.data, seed, print)   # after encoding, before batching
    add_length_head(rm)                       # ODIN: the score head gets a second output row, the length head
    with quality_head_only(rm, config.task.length_head) as scored:                   # what is saved and exported
        scored.save_pretrained(directory)     # a stock one-output model: the quality row alone

Order: the mixture resamples first (`rewardkit.data.mixture`), then length balancing reweights what will be trained,
so both hold on the training set as the loop sees it. Both leave the held-out set alone: they run after the split.
Lengths are response tokens, as in the held-out length split of `rewardkit eval`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn

from rewardkit.config import DataConfig, LengthHeadConfig
from rewardkit.data.mixture import mixture_shares, resample_to_shares
from rewardkit.errors import ConfigError
from rewardkit.models.backbones import gathered, head_linear
from rewardkit.models.reward_model import RewardModel
from rewardkit.tasks.comparisons import EncodedComparison

ODIN_OUTPUTS = ("quality", "length")


def rebalance_training_set(train_set: list[EncodedComparison], data: DataConfig, seed: int,
                           echo: Callable[[str], None]) -> tuple[list[EncodedComparison], dict | None]:
    """The training pairs resampled to `data.mixture` and reweighted by `data.length_balance`, and what each did
    per source (None when neither is set); each prints one line, every source on it, through `echo`."""
    if not (data.mixture or data.length_balance):
        return train_set, None
    notes: dict = {}
    if data.mixture:
        train_set, notes["mixture"] = mix_sources(train_set, data, seed)
        echo(f"mixture (resampled, seed {seed}, {len(train_set)} pairs): " + "; ".join(
            f"{source} {s['pairs']} ({s['share']:.3f}) -> {s['resampled_pairs']} ({s['target_share']:.3f})"
            for source, s in notes["mixture"]["sources"].items()))
    if data.length_balance:
        train_set, notes["length_balance"] = balance_lengths(train_set)
        echo("length balance, weighted share of pairs whose chosen reply is longer: " + "; ".join(
            f"{source} {share_text(s['chosen_longer_share_before'])} -> {share_text(s['chosen_longer_share_after'])}"
            for source, s in notes["length_balance"].items()))
    notes["effective_share"] = weight_shares(train_set)
    echo("effective share of the training weight: " + "; ".join(
        f"{source} {share:.3f}" for source, share in notes["effective_share"].items()))
    return train_set, notes


def share_text(share: float | None) -> str:
    return "n/a (all equal length)" if share is None else f"{share:.3f}"


def source_of(comparison: EncodedComparison) -> str:
    subset = comparison.pair.subset
    if subset is None:
        raise ConfigError(f"data.mixture needs every training pair's subset: pair {comparison.pair.id} has none "
                          "(set data.train[].subset)")
    return subset


def pair_weight(comparison: EncodedComparison) -> float:
    return 1.0 if comparison.pair.weight is None else comparison.pair.weight


def mix_sources(train_set: list[EncodedComparison], data: DataConfig, seed: int) -> tuple[list, dict]:
    """`train_set` resampled to the mixture's shares, same total; and per source its pairs, share and target."""
    counts = Counter(source_of(comparison) for comparison in train_set)
    shares = mixture_shares(counts, weights=data.mixture.weights, temperature=data.mixture.temperature)
    mixed = resample_to_shares(train_set, source_of, shares, total=len(train_set), seed=seed)
    resampled = Counter(source_of(comparison) for comparison in mixed)
    sources = {source: {"pairs": n, "share": n / len(train_set), "target_share": shares[source],
                        "resampled_pairs": resampled[source]} for source, n in counts.items()}
    return mixed, {"method": "resample", "seed": seed, "total": len(mixed), "sources": sources}


def length_sign(comparison: EncodedComparison) -> int:
    """1 when the chosen reply has more response tokens, -1 when fewer, 0 when as many."""
    difference = comparison.chosen.response_length - comparison.rejected.response_length
    return (difference > 0) - (difference < 0)


def balance_lengths(train_set: list[EncodedComparison]) -> tuple[list[EncodedComparison], dict]:
    """Within each source (subset), scale the weights of chosen-longer and chosen-shorter pairs so each side holds
    half of their joint weight, which stays what it was (so do the sources' shares); equal-length pairs keep their
    weights and are left out of the share. A source with pairs on one side only cannot be balanced and stays as it
    is. Weights compose: a pair's weight (per prompt, by agreement) is multiplied."""
    totals = side_weights(train_set)
    scales = {source: side_scales(sides) for source, sides in totals.items()}
    balanced = [reweighted(c, scales[c.pair.subset][length_sign(c)]) for c in train_set]
    after = side_weights(balanced)
    notes = {str(source): {"pairs": sum(c.pair.subset == source for c in train_set),
                           "equal_length_pairs": sum(c.pair.subset == source for c in train_set if not length_sign(c)),
                           "chosen_longer_share_before": longer_share(sides),
                           "chosen_longer_share_after": longer_share(after[source])}
             for source, sides in totals.items()}
    return balanced, notes


def side_weights(train_set: Sequence[EncodedComparison]) -> dict[str | None, dict[int, float]]:
    """Per source (subset), the weight of its chosen-longer (1), chosen-shorter (-1) and equal-length (0) pairs."""
    totals: dict[str | None, dict[int, float]] = {}
    for comparison in train_set:
        sides = totals.setdefault(comparison.pair.subset, {1: 0.0, -1: 0.0, 0: 0.0})
        sides[length_sign(comparison)] += pair_weight(comparison)
    return totals


def side_scales(sides: dict[int, float]) -> dict[int, float]:
    """Factors for the chosen-longer (1) and chosen-shorter (-1) weights that give each half their sum; 1 for
    equal-length pairs (0), and for both sides when one side is empty."""
    longer, shorter = sides[1], sides[-1]
    if not (longer > 0 and shorter > 0):
        return {1: 1.0, -1: 1.0, 0: 1.0}
    half = (longer + shorter) / 2
    return {1: half / longer, -1: half / shorter, 0: 1.0}


def longer_share(sides: dict[int, float]) -> float | None:
    decided = sides[1] + sides[-1]
    return sides[1] / decided if decided else None


def reweighted(comparison: EncodedComparison, scale: float) -> EncodedComparison:
    if scale == 1.0:
        return comparison
    return replace(comparison, pair=replace(comparison.pair, weight=pair_weight(comparison) * scale))


def weight_shares(train_set: Sequence[EncodedComparison]) -> dict[str, float]:
    """Each source's share of the total training weight (what the loss sees)."""
    weights: dict[str, float] = {}
    for comparison in train_set:
        source = str(comparison.pair.subset)
        weights[source] = weights.get(source, 0.0) + pair_weight(comparison)
    total = sum(weights.values())
    return {source: weight / total for source, weight in weights.items()}


# ---- ODIN: the disentangled length head ---------------------------------------------------------------------------
def final_linear_slot(model: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """(parent module, attribute name, layer) of the score head's final linear layer."""
    linear = head_linear(model)
    name = next(name for name, module in model.named_modules() if module is linear)
    parent_name, _, attribute = name.rpartition(".")
    return model.get_submodule(parent_name), attribute, linear


def add_length_head(rm: RewardModel) -> None:
    """Give the score head a second output row, the length head, initialized as the first (std 1/sqrt(d+1), zero
    bias) and kept as row 1; the spec names the outputs (quality, length) and scores quality alone (attribute
    weights 1, 0), so evaluation during training reads the quality head."""
    parent, attribute, linear = final_linear_slot(rm.model)
    head = nn.Linear(linear.in_features, 2, bias=linear.bias is not None, device=linear.weight.device,
                     dtype=linear.weight.dtype)
    with gathered(linear), torch.no_grad():
        head.weight[0] = linear.weight[0]
        head.weight[1].normal_(std=1 / math.sqrt(linear.in_features + 1))
        if head.bias is not None:
            head.bias.zero_()
    setattr(parent, attribute, head)
    rm.model.config.num_labels = len(ODIN_OUTPUTS)
    rm.spec = rm.spec.model_copy(update={"attributes": list(ODIN_OUTPUTS), "attribute_weights": [1.0, 0.0]})


@contextmanager
def quality_head_only(rm: RewardModel, length_head: LengthHeadConfig | None) -> Iterator[RewardModel]:
    """`rm` with its score head cut to the quality row, a stock one-output model, for evaluating and saving; the
    two-row head (and the spec) come back on exit, so training and resumable checkpoints keep both. Without a
    length head, `rm` as it is."""
    if length_head is None:
        yield rm
        return
    parent, attribute, linear = final_linear_slot(rm.model)
    quality = nn.Linear(linear.in_features, 1, bias=linear.bias is not None, device=linear.weight.device,
                        dtype=linear.weight.dtype)
    with torch.no_grad():
        quality.weight.copy_(linear.weight[:1])
        if quality.bias is not None:
            quality.bias.copy_(linear.bias[:1])
    spec = rm.spec
    setattr(parent, attribute, quality)
    rm.model.config.num_labels = 1
    rm.spec = spec.model_copy(update={"attributes": None, "attribute_weights": None})
    try:
        yield rm
    finally:
        setattr(parent, attribute, linear)
        rm.model.config.num_labels = len(ODIN_OUTPUTS)
        rm.spec = spec
