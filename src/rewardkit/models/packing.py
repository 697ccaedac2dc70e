"""Prefix sharing for decoder backbones: sequences that start alike are computed once up to where they part.

A causal model's hidden states before position c depend only on tokens before c, so the chosen and rejected
sides of a pair (or the N candidates of one prompt) can share one row::

    row       [shared prefix ........][rest of seq 1 ....][rest of seq 2 ..][pad]
    position   0 1 ...           c-1   c ...               c ...
    segment    0 0 ...             0   1 1 ...             2 2 ...            -1

Each token sees the shared prefix and the earlier tokens of its own segment, never another segment (a 4-D mask
for SDPA); positions restart after the prefix, so every sequence gets exactly the positions it has alone. The
reward of sequence k is read at the last token of segment k. The shared part is the longest common token
prefix (the prompt, and sometimes the first words of the replies), kept at least one token short of every
sequence so each has a scored token of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PackedRow:
    input_ids: list[int]
    position_ids: list[int]
    segments: list[int]  # 0: shared prefix; k: the rest of sequence k (1-based)
    score_index: list[int]  # the last token of each sequence, in input order


def shared_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the common token prefix, at most one short of the shortest sequence."""
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    length = 0
    while length < limit and all(s[length] == first[length] for s in sequences[1:]):
        length += 1
    return length


def pack_sequences(sequences: Sequence[Sequence[int]]) -> PackedRow:
    """One row holding the shared prefix once, then the rest of each sequence."""
    shared = shared_prefix_length(sequences)
    input_ids, positions, segments = list(sequences[0][:shared]), list(range(shared)), [0] * shared
    score_index = []
    for k, sequence in enumerate(sequences, start=1):
        rest = sequence[shared:]
        input_ids += rest
        positions += range(shared, len(sequence))
        segments += [k] * len(rest)
        score_index.append(len(input_ids) - 1)
    return PackedRow(input_ids, positions, segments, score_index)


def collate_packed(rows: Sequence[PackedRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad packed rows; the attention mask is 4-D (b, 1, t, t), True where a token may attend.

    Rows may hold different numbers of sequences: `score_index` (b, k) repeats a short row's last index, and
    the caller ignores those extra columns."""
    width = max(len(r.input_ids) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), -1, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        input_ids[i, :n], position_ids[i, :n], segments[i, :n] = (torch.tensor(v) for v in
                                                                  (row.input_ids, row.position_ids, row.segments))
    k = max(len(row.score_index) for row in rows)
    score_index = torch.tensor([row.score_index + row.score_index[-1:] * (k - len(row.score_index)) for row in rows])
    return {"input_ids": input_ids, "attention_mask": segment_mask(segments), "position_ids": position_ids,
            "score_index": score_index}


def segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """(b, 1, t, t) boolean mask from segment ids (b, t): causal, a segment sees the prefix (0) and itself;
    padding (-1) sees only itself, so no softmax row is empty."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    query, key = segments.unsqueeze(2), segments.unsqueeze(1)  # (b, t, 1), (b, 1, t)
    visible = causal & ((key == 0) | (key == query)) & (key >= 0) & (query >= 0)
    padding_diagonal = torch.eye(t, dtype=torch.bool) & (query < 0)
    return (visible | padding_diagonal).unsqueeze(1)
