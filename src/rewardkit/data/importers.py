"""Upstream preference layouts -> canonical pair records (the fields of `rewardkit.data.PreferencePair`).

Each importer takes one record, its default id ("{file stem}-{record index}") and a notes counter, and returns
the record's pairs as dicts with keys prompt, chosen, rejected, id, subset, margin, weight (and tie, votes from the
voted formats, pairs and pandalm, which also take a `Voting`). A bad record raises
`DataError("field 'chosen': missing")`; the loader in `rewardkit.data.sources` prefixes where it is. Texts may be
empty: an empty reply is a real candidate to score; only a missing field, a non-string or a malformed message
list is bad input.
`detect_format` picks an importer from a record's fields, first match in `DETECTION`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rewardkit.data.records import Message, PreferencePair, Text, majority
from rewardkit.errors import DataError

PairRecord = dict[str, Any]  # keyword arguments of PreferencePair


ROLES = ("system", "user", "assistant")


HH_ASSISTANT = "\n\nAssistant:"


HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")


HH_ROLES = {"Human": "user", "Assistant": "assistant"}


SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


LLAMA2_STRENGTHS = {"significantly better": 1.0, "better": 2 / 3, "slightly better": 1 / 3,
                    "negligibly better": 0.0, "unsure": 0.0}  # Llama 2's preference rating -> margin


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def wrong_type(field_name: str, expected: str, value: Any) -> DataError:
    return DataError(f"field '{field_name}': expected {expected}, got {_type_name(value)}")


def require_field(record: dict, name: str, parent: str = "") -> Any:
    """`record[name]`; a missing or null value is an error naming the field."""
    if record.get(name) is None:
        raise DataError(f"field '{parent + '.' if parent else ''}{name}': missing")
    return record[name]


def string_field(value: Any, field_name: str) -> str:
    """A string, empty ones included."""
    if not isinstance(value, str):
        raise wrong_type(field_name, "a string", value)
    return value


def _message(value: Any, field_name: str) -> Message:
    """A {role, content} message; other keys are dropped."""
    if not isinstance(value, dict):
        raise wrong_type(field_name, "a message {role, content}", value)
    role = string_field(require_field(value, "role", field_name), f"{field_name}.role")
    if role not in ROLES:
        raise DataError(f"field '{field_name}.role': unknown role '{role}' (expected system, user or assistant)")
    content = string_field(require_field(value, "content", field_name), f"{field_name}.content")
    return {"role": role, "content": content}


def parse_messages(value: Any, field_name: str) -> list[Message]:
    if not isinstance(value, list):
        raise wrong_type(field_name, "a list of messages", value)
    return [_message(item, f"{field_name}[{i}]") for i, item in enumerate(value)]


def parse_prompt(value: Any, field_name: str) -> Text:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return parse_messages(value, field_name)
    raise wrong_type(field_name, "a string or a list of messages", value)


def parse_response(value: Any, field_name: str) -> Text:
    """A reply: a string, or one or more assistant messages (a lone message dict is accepted); an empty reply is
    valid (a policy can produce it and a reward model must score it)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        messages = [_message(value, field_name)]
    elif isinstance(value, list):
        messages = parse_messages(value, field_name)
    else:
        raise wrong_type(field_name, "a string or assistant messages", value)
    if not messages:
        raise DataError(f"field '{field_name}': expected one or more assistant messages, got an empty list")
    if any(message["role"] != "assistant" for message in messages):
        raise DataError(f"field '{field_name}': a response holds only assistant messages")
    return messages


def _as_assistant(response: Text) -> list[Message]:
    return [{"role": "assistant", "content": response}] if isinstance(response, str) else response


def same_kind(prompt: Text, *responses: Text) -> tuple[Text, ...]:
    """All plain text, or all messages when any of the texts is messages."""
    if all(isinstance(text, str) for text in (prompt, *responses)):
        return prompt, *responses
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}] if prompt else []
    return prompt, *(_as_assistant(response) for response in responses)


def optional_number(record: dict, name: str) -> float | None:
    """A float, or None when absent; numeric strings (csv cells) are accepted, an empty cell is absent."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            raise wrong_type(name, "a number", value) from None
        except OverflowError:
            raise DataError(f"field '{name}': an integer of {len(str(value))} digits is out of float range") from None
        if not math.isfinite(number) or (name == "weight" and number <= 0):
            kind = "positive finite" if name == "weight" else "finite"
            raise DataError(f"field '{name}': {value!r} is not a {kind} number")
        return number
    raise wrong_type(name, "a number", value)


def optional_key(record: dict, name: str) -> str | None:
    """An identifier field (a string or an integer) as a string; None when absent."""
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise wrong_type(name, "a string or an integer", value)
    return str(value)


def record_id_or_default(record: dict, default_id: str | None) -> str:
    value = optional_key(record, "id")
    if value is None:
        if default_id is None:
            raise DataError("field 'id': missing")
        return default_id
    return value


def optional_subset(record: dict) -> str | None:
    subset = record.get("subset")
    return None if subset is None else string_field(subset, "subset")


def _pair_record(
    record: dict, default_id: str | None, prompt: Text, chosen: Text, rejected: Text, *,
    id_suffix: str = "", default_subset: str | None = None,
) -> PairRecord:
    """A pair carrying the record's own `id`, `subset`, `margin` and `weight` when it has them."""
    subset = optional_subset(record)
    prompt, chosen, rejected = same_kind(prompt, chosen, rejected)
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "id": record_id_or_default(record, default_id) + id_suffix,
        "subset": subset or default_subset,
        "margin": optional_number(record, "margin"),
        "weight": optional_number(record, "weight"),
    }


@dataclass
class Voting:
    """How the voted formats import: tie pairs are kept (`tie=True`) with `keep_ties`, else dropped and counted as
    `ties_dropped`; every voted item's votes, in the record's own order (1 = first response better, 2 = second,
    0 = tie), are appended to `tables`, dropped items included."""

    keep_ties: bool = False
    tables: list[tuple[int, ...]] = field(default_factory=list)


def _vote_value(value: Any, field_name: str) -> int:
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise DataError(f"field '{field_name}': expected 0 (tie), 1 or 2, got {value!r}")
    return int(value)


def _optional_votes(record: dict) -> tuple[int, ...] | None:
    """`votes` in the pair's orientation (1 = chosen better, 2 = rejected better, 0 = tie); None when absent."""
    value = record.get("votes")
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise wrong_type("votes", "a non-empty list of votes", value)
    votes = tuple(_vote_value(vote, f"votes[{i}]") for i, vote in enumerate(value))
    if votes.count(2) > votes.count(1):
        raise DataError("field 'votes': more votes for 'rejected' than for 'chosen'")
    return votes


def _optional_tie(record: dict) -> bool:
    """`tie` as a boolean; csv cells "true"/"false" are accepted, an absent field or empty cell is False."""
    value = record.get("tie")
    if isinstance(value, str) and value.lower() in ("true", "false", ""):
        return value.lower() == "true"
    if value is not None and not isinstance(value, bool):
        raise wrong_type("tie", "a boolean", value)
    return bool(value)


def _strength_margin(record: dict) -> float | None:
    """`preference_strength` as a margin: HelpSteer2-Preference's 1..3 -> k/3, or a Llama 2 rating string."""
    value = record.get("preference_strength")
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().lower() in LLAMA2_STRENGTHS:
        return LLAMA2_STRENGTHS[value.strip().lower()]
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():  # a csv cell
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"field 'preference_strength': expected an integer 1 to 3 or one of {list(LLAMA2_STRENGTHS)}, "
                        f"got {value!r}")
    if not 1 <= value <= 3:
        raise DataError(f"field 'preference_strength': {value} is not 1 to 3 (positive: chosen is the better one)")
    return value / 3


def _settle_tie(pair: PairRecord, notes: Counter, voting: Voting) -> list[PairRecord]:
    if pair["tie"] and not voting.keep_ties:
        notes["ties_dropped"] += 1
        return []
    return [pair]


Importer = Callable[[dict, str | None, Counter], list[PairRecord]]


# (fields that must all be present, or a test of the record; format), first match wins
Detection = Sequence[tuple[set[str] | Callable[[dict], bool], str]]


def record_prompt(record: dict) -> Text:
    """`prompt` (text or messages), or OpenAI-style `messages`."""
    if "messages" in record:
        return parse_messages(record["messages"], "messages")
    return parse_prompt(require_field(record, "prompt"), "prompt")


def _import_pairs(
    record: dict, default_id: str | None, notes: Counter, voting: Voting | None = None,
) -> list[PairRecord]:
    """Explicit prompt with `chosen` and `rejected`; optional `tie`, `votes`, and `preference_strength` as the margin
    when `margin` is absent."""
    voting = voting or Voting()
    prompt = record_prompt(record)
    chosen = parse_response(require_field(record, "chosen"), "chosen")
    rejected = parse_response(require_field(record, "rejected"), "rejected")
    pair = _pair_record(record, default_id, prompt, chosen, rejected)
    pair.update(tie=_optional_tie(record), votes=_optional_votes(record))
    strength = _strength_margin(record)  # checked even when `margin` is given
    if pair["margin"] is None:
        pair["margin"] = strength
    if pair["votes"] is not None:
        voting.tables.append(pair["votes"])
    return _settle_tie(pair, notes, voting)


def _split_hh(value: Any, field_name: str) -> tuple[str, str]:
    """HH-RLHF transcript -> (text up to and including the last "\\n\\nAssistant:", the stripped reply after it,
    which may be empty)."""
    text = string_field(value, field_name)
    cut = text.rfind(HH_ASSISTANT)
    if cut < 0:
        raise DataError(f"field '{field_name}': no '\\n\\nAssistant:' turn in the transcript")
    cut += len(HH_ASSISTANT)
    return text[:cut], text[cut:].strip()


def _hh_messages(prompt_text: str) -> list[Message]:
    """"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:" -> user a, assistant b, user c (stripped)."""
    parts = HH_TURN.split(prompt_text)
    if parts[0].strip():
        raise DataError("field 'chosen': text before the first 'Human:' turn")
    # the last turn is the empty Assistant turn being answered
    turns = list(zip(parts[1::2], parts[2::2], strict=True))[:-1]
    return [{"role": HH_ROLES[speaker], "content": content.strip()} for speaker, content in turns]


def _split_messages(value: Any, field_name: str) -> tuple[list[Message], Text]:
    """Message transcript -> (the messages before the last assistant message, that message)."""
    messages = parse_messages(value, field_name)
    last = max((i for i, message in enumerate(messages) if message["role"] == "assistant"), default=None)
    if last is None:
        raise DataError(f"field '{field_name}': no assistant message")
    return messages[:last], parse_response(messages[last:], field_name)


def _import_implicit(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """`chosen` and `rejected` are whole transcripts that must agree on everything before the last reply."""
    chosen = require_field(record, "chosen")
    split = _split_hh if isinstance(chosen, str) else _split_messages
    chosen_prompt, chosen_reply = split(chosen, "chosen")
    rejected_prompt, rejected_reply = split(require_field(record, "rejected"), "rejected")
    if chosen_prompt != rejected_prompt:
        notes["no_shared_prefix"] += 1
        raise DataError("field 'rejected': no shared prefix with 'chosen' (they differ before the last reply)")
    prompt = _hh_messages(chosen_prompt) if isinstance(chosen_prompt, str) else chosen_prompt
    return [_pair_record(record, default_id, prompt, chosen_reply, rejected_reply)]


def _sharegpt_message(value: Any, field_name: str) -> Message:
    if not isinstance(value, dict):
        raise wrong_type(field_name, "a turn {from, value}", value)
    speaker = string_field(require_field(value, "from", field_name), f"{field_name}.from")
    if speaker not in SHAREGPT_ROLES:
        raise DataError(f"field '{field_name}.from': unknown speaker '{speaker}'")
    content = string_field(require_field(value, "value", field_name), f"{field_name}.value")
    return {"role": SHAREGPT_ROLES[speaker], "content": content}


def _import_sharegpt(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """`conversations` is the prompt; `chosen`/`rejected` are {from, value} turns or strings."""
    turns = require_field(record, "conversations")
    if not isinstance(turns, list):
        raise wrong_type("conversations", "a list of turns", turns)
    prompt = [_sharegpt_message(turn, f"conversations[{i}]") for i, turn in enumerate(turns)]
    replies = []
    for side in ("chosen", "rejected"):
        value = require_field(record, side)
        replies.append(parse_response(_sharegpt_message(value, side) if isinstance(value, dict) else value, side))
    return [_pair_record(record, default_id, prompt, *replies)]


def instruction_prompt(record: dict) -> list[Message]:
    """Earlier `history` turns, then `instruction` (with a non-empty `input` after a blank line) as the user turn."""
    instruction = string_field(require_field(record, "instruction"), "instruction")
    extra = string_field(record.get("input") or "", "input")
    if extra.strip():
        instruction = f"{instruction}\n\n{extra}"
    history = record.get("history") or []
    if not isinstance(history, list):
        raise wrong_type("history", "a list of [user, assistant] turns", history)
    messages = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, list) and len(turn) == 2):
            raise DataError(f"field 'history[{i}]': expected a [user, assistant] pair")
        messages.append({"role": "user", "content": string_field(turn[0], f"history[{i}][0]")})
        messages.append({"role": "assistant", "content": string_field(turn[1], f"history[{i}][1]")})
    return messages + [{"role": "user", "content": instruction}]


def ranked_responses(record: dict, field_name: str) -> list[Text]:
    """`record[field_name]`: at least 2 responses, best first."""
    outputs = require_field(record, field_name)
    if not isinstance(outputs, list) or len(outputs) < 2:
        raise DataError(f"field '{field_name}': expected a list of at least 2 responses, best first")
    return [parse_response(output, f"{field_name}[{i}]") for i, output in enumerate(outputs)]


def _import_ranked(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """`output` is ranked best first: every pair i < j (InstructGPT style), with ids "{id}-{i}>{j}"."""
    prompt = instruction_prompt(record)
    replies = ranked_responses(record, "output")
    pairs = [
        _pair_record(record, default_id, prompt, replies[i], replies[j], id_suffix=f"-{i}>{j}")
        for i, j in itertools.combinations(range(len(replies)), 2)
    ]
    notes["expanded_ranked_pairs"] += len(pairs)
    return pairs


def _import_pandalm(
    record: dict, default_id: str | None, notes: Counter, voting: Voting | None = None,
) -> list[PairRecord]:
    """The side with 2 or 3 of the 3 votes is chosen, with the votes on the pair; a three-way split is dropped and
    counted, a tie majority is a tie pair (response1 as chosen) that `voting` keeps or drops."""
    voting = voting or Voting()
    prompt = instruction_prompt(record)
    responses = [string_field(require_field(record, name), name) for name in ("response1", "response2")]
    votes = tuple(_vote_value(require_field(record, name), name)
                  for name in ("annotator1", "annotator2", "annotator3"))
    voting.tables.append(votes)
    winner, _ = majority(votes)
    if winner is None:
        notes["no_majority_dropped"] += 1
        return []
    if winner == 2:
        responses, votes = responses[::-1], tuple((0, 2, 1)[vote] for vote in votes)
    pair = _pair_record(record, default_id, prompt, *responses, default_subset="pandalm")
    pair.update(tie=winner == 0, votes=votes)
    return _settle_tie(pair, notes, voting)


IMPORTERS: dict[str, Importer] = {
    "pairs": _import_pairs,
    "implicit": _import_implicit,
    "sharegpt": _import_sharegpt,
    "ranked": _import_ranked,
    "pandalm": _import_pandalm,
}


DETECTION: Detection = [
    ({"conversations"}, "sharegpt"),
    ({"response1", "response2"}, "pandalm"),
    ({"instruction", "output"}, "ranked"),
    ({"prompt"}, "pairs"),
    ({"messages"}, "pairs"),
    ({"chosen", "rejected"}, "implicit"),
]


def voting_importers(voting: Voting) -> dict[str, Importer]:
    """`IMPORTERS` with the voted formats bound to `voting`."""
    return {name: partial(importer, voting=voting) if name in ("pairs", "pandalm") else importer
            for name, importer in IMPORTERS.items()}


def detected_format(record: dict, detection: Detection) -> str | None:
    """The first format in `detection` that the record matches (has all its fields, or passes its test)."""
    return next((name for required, name in detection
                 if (required(record) if callable(required) else required <= record.keys())), None)


def detect_format(record: dict, detection: Detection = DETECTION, formats: Mapping[str, Any] = IMPORTERS) -> str:
    """`detected_format`, or a `DataError` listing the formats to pass instead."""
    found = detected_format(record, detection)
    if found is None:
        raise DataError(f"cannot detect the format from fields {sorted(record)}; pass format= one of {list(formats)}")
    return found


def pair_from_dict(record: dict) -> PreferencePair:
    """Inverse of `PreferencePair.to_dict` (`id` required); raises `DataError` naming the bad field."""
    return PreferencePair(**IMPORTERS["pairs"](record, None, Counter(), Voting(keep_ties=True))[0])
