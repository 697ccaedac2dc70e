"""Upstream preference layouts -> canonical pair records (the fields of `rewardkit.data.PreferencePair`).

Each importer takes one record, its default id ("{file stem}-{record index}") and a notes counter, and returns
the record's pairs as dicts with keys prompt, chosen, rejected, id, subset, margin, weight. A bad record raises
`DataError("field 'chosen': empty response")`; the loader in `rewardkit.data` prefixes where it is.
`detect_format` picks an importer from a record's fields, first match in `DETECTION`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": str}
Text = str | list[Message]  # plain text, or chat messages
PairRecord = dict[str, Any]  # keyword arguments of PreferencePair

ROLES = ("system", "user", "assistant")
HH_ASSISTANT = "\n\nAssistant:"
HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


class DataError(ValueError):
    """Bad preference data; the message says where: "FILE:LINE: field 'chosen': empty response"."""


# ---------------------------------------------------------------------------------------------- field checks


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _wrong_type(field_name: str, expected: str, value: Any) -> DataError:
    return DataError(f"field '{field_name}': expected {expected}, got {_type_name(value)}")


def _require(record: dict, name: str, parent: str = "") -> Any:
    """`record[name]`; a missing or null value is an error naming the field."""
    if record.get(name) is None:
        raise DataError(f"field '{parent + '.' if parent else ''}{name}': missing")
    return record[name]


def _string(value: Any, field_name: str, *, response: bool = False) -> str:
    if not isinstance(value, str):
        raise _wrong_type(field_name, "a string", value)
    if response and not value.strip():
        raise DataError(f"field '{field_name}': empty response")
    return value


def _message(value: Any, field_name: str) -> Message:
    """A {role, content} message; other keys are dropped."""
    if not isinstance(value, dict):
        raise _wrong_type(field_name, "a message {role, content}", value)
    role = _string(_require(value, "role", field_name), f"{field_name}.role")
    if role not in ROLES:
        raise DataError(f"field '{field_name}.role': unknown role '{role}' (expected system, user or assistant)")
    return {"role": role, "content": _string(_require(value, "content", field_name), f"{field_name}.content")}


def parse_messages(value: Any, field_name: str) -> list[Message]:
    if not isinstance(value, list):
        raise _wrong_type(field_name, "a list of messages", value)
    return [_message(item, f"{field_name}[{i}]") for i, item in enumerate(value)]


def parse_prompt(value: Any, field_name: str) -> Text:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return parse_messages(value, field_name)
    raise _wrong_type(field_name, "a string or a list of messages", value)


def parse_response(value: Any, field_name: str) -> Text:
    """A reply: a non-blank string, or one or more assistant messages (a lone message dict is accepted)."""
    if isinstance(value, str):
        return _string(value, field_name, response=True)
    if isinstance(value, dict):
        messages = [_message(value, field_name)]
    elif isinstance(value, list):
        messages = parse_messages(value, field_name)
    else:
        raise _wrong_type(field_name, "a string or assistant messages", value)
    if any(message["role"] != "assistant" for message in messages):
        raise DataError(f"field '{field_name}': a response holds only assistant messages")
    if not any(message["content"].strip() for message in messages):
        raise DataError(f"field '{field_name}': empty response")
    return messages


def _as_assistant(response: Text) -> list[Message]:
    return [{"role": "assistant", "content": response}] if isinstance(response, str) else response


def _same_kind(prompt: Text, chosen: Text, rejected: Text) -> tuple[Text, Text, Text]:
    """All plain text, or all messages when any of the three is messages."""
    if all(isinstance(text, str) for text in (prompt, chosen, rejected)):
        return prompt, chosen, rejected
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}] if prompt else []
    return prompt, _as_assistant(chosen), _as_assistant(rejected)


def _optional_number(record: dict, name: str) -> float | None:
    """A float, or None when absent; numeric strings (csv cells) are accepted, an empty cell is absent."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number) or (name == "weight" and number <= 0):
                raise DataError(f"field '{name}': {value!r} is not a {'positive ' if name == 'weight' else ''}finite number")
            return number
    raise _wrong_type(name, "a number", value)


def _record_id(record: dict, default_id: str | None) -> str:
    value = record.get("id")
    if value is None:
        if default_id is None:
            raise DataError("field 'id': missing")
        return default_id
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _wrong_type("id", "a string or an integer", value)
    return str(value)


def _pair_record(
    record: dict, default_id: str | None, prompt: Text, chosen: Text, rejected: Text, *,
    id_suffix: str = "", default_subset: str | None = None,
) -> PairRecord:
    """A pair carrying the record's own `id`, `subset`, `margin` and `weight` when it has them."""
    subset = record.get("subset")
    if subset is not None:
        _string(subset, "subset")
    prompt, chosen, rejected = _same_kind(prompt, chosen, rejected)
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "id": _record_id(record, default_id) + id_suffix,
        "subset": subset or default_subset,
        "margin": _optional_number(record, "margin"),
        "weight": _optional_number(record, "weight"),
    }


# ------------------------------------------------------------------------------------------------- importers

Importer = Callable[[dict, str | None, Counter], list[PairRecord]]


def _import_pairs(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """Explicit prompt: `prompt` (text or messages) or OpenAI-style `messages`, with `chosen` and `rejected`."""
    if "messages" in record:
        prompt = parse_messages(record["messages"], "messages")
    else:
        prompt = parse_prompt(_require(record, "prompt"), "prompt")
    chosen = parse_response(_require(record, "chosen"), "chosen")
    rejected = parse_response(_require(record, "rejected"), "rejected")
    return [_pair_record(record, default_id, prompt, chosen, rejected)]


def _split_hh(value: Any, field_name: str) -> tuple[str, str]:
    """HH-RLHF transcript -> (text up to and including the last "\\n\\nAssistant:", the stripped reply after it)."""
    text = _string(value, field_name)
    cut = text.rfind(HH_ASSISTANT)
    if cut < 0:
        raise DataError(f"field '{field_name}': no '\\n\\nAssistant:' turn in the transcript")
    cut += len(HH_ASSISTANT)
    return text[:cut], _string(text[cut:].strip(), field_name, response=True)


def _hh_messages(prompt_text: str) -> list[Message]:
    """"\\n\\nHuman: a\\n\\nAssistant: b\\n\\nHuman: c\\n\\nAssistant:" -> user a, assistant b, user c (stripped)."""
    parts = HH_TURN.split(prompt_text)
    if parts[0].strip():
        raise DataError("field 'chosen': text before the first 'Human:' turn")
    turns = list(zip(parts[1::2], parts[2::2]))[:-1]  # the last is the empty Assistant turn being answered
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
    chosen = _require(record, "chosen")
    split = _split_hh if isinstance(chosen, str) else _split_messages
    chosen_prompt, chosen_reply = split(chosen, "chosen")
    rejected_prompt, rejected_reply = split(_require(record, "rejected"), "rejected")
    if chosen_prompt != rejected_prompt:
        notes["no_shared_prefix"] += 1
        raise DataError("field 'rejected': no shared prefix with 'chosen' (they differ before the last reply)")
    prompt = _hh_messages(chosen_prompt) if isinstance(chosen_prompt, str) else chosen_prompt
    return [_pair_record(record, default_id, prompt, chosen_reply, rejected_reply)]


def _sharegpt_message(value: Any, field_name: str) -> Message:
    if not isinstance(value, dict):
        raise _wrong_type(field_name, "a turn {from, value}", value)
    speaker = _string(_require(value, "from", field_name), f"{field_name}.from")
    if speaker not in SHAREGPT_ROLES:
        raise DataError(f"field '{field_name}.from': unknown speaker '{speaker}'")
    content = _string(_require(value, "value", field_name), f"{field_name}.value")
    return {"role": SHAREGPT_ROLES[speaker], "content": content}


def _import_sharegpt(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """`conversations` is the prompt; `chosen`/`rejected` are {from, value} turns or strings."""
    turns = _require(record, "conversations")
    if not isinstance(turns, list):
        raise _wrong_type("conversations", "a list of turns", turns)
    prompt = [_sharegpt_message(turn, f"conversations[{i}]") for i, turn in enumerate(turns)]
    replies = []
    for side in ("chosen", "rejected"):
        value = _require(record, side)
        replies.append(parse_response(_sharegpt_message(value, side) if isinstance(value, dict) else value, side))
    return [_pair_record(record, default_id, prompt, *replies)]


def _instruction_prompt(record: dict) -> list[Message]:
    """Earlier `history` turns, then `instruction` (with a non-empty `input` after a blank line) as the user turn."""
    instruction = _string(_require(record, "instruction"), "instruction")
    extra = _string(record.get("input") or "", "input")
    if extra.strip():
        instruction = f"{instruction}\n\n{extra}"
    history = record.get("history") or []
    if not isinstance(history, list):
        raise _wrong_type("history", "a list of [user, assistant] turns", history)
    messages = []
    for i, turn in enumerate(history):
        if not (isinstance(turn, list) and len(turn) == 2):
            raise DataError(f"field 'history[{i}]': expected a [user, assistant] pair")
        messages.append({"role": "user", "content": _string(turn[0], f"history[{i}][0]")})
        messages.append({"role": "assistant", "content": _string(turn[1], f"history[{i}][1]")})
    return messages + [{"role": "user", "content": instruction}]


def _import_ranked(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """`output` is ranked best first: every pair i < j (InstructGPT style), with ids "{id}-{i}>{j}"."""
    prompt = _instruction_prompt(record)
    outputs = _require(record, "output")
    if not isinstance(outputs, list) or len(outputs) < 2:
        raise DataError("field 'output': expected a list of at least 2 responses, best first")
    replies = [parse_response(output, f"output[{i}]") for i, output in enumerate(outputs)]
    pairs = [
        _pair_record(record, default_id, prompt, replies[i], replies[j], id_suffix=f"-{i}>{j}")
        for i, j in itertools.combinations(range(len(replies)), 2)
    ]
    notes["expanded_ranked_pairs"] += len(pairs)
    return pairs


def _vote(record: dict, name: str) -> int:
    value = _require(record, name)
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise DataError(f"field '{name}': expected 0 (tie), 1 or 2, got {value!r}")
    return int(value)


def _import_pandalm(record: dict, default_id: str | None, notes: Counter) -> list[PairRecord]:
    """Keep the side with 2 or 3 of the 3 votes; a tie majority or a three-way split is dropped and counted."""
    prompt = _instruction_prompt(record)
    responses = [_string(_require(record, name), name, response=True) for name in ("response1", "response2")]
    votes = [_vote(record, f"annotator{k}") for k in (1, 2, 3)]
    winner = next((side for side in (0, 1, 2) if votes.count(side) >= 2), None)
    if winner is None:
        notes["no_majority_dropped"] += 1
        return []
    if winner == 0:
        notes["ties_dropped"] += 1
        return []
    if votes.count(winner) == 2:
        notes["kept_with_2_of_3_votes"] += 1
    chosen, rejected = responses if winner == 1 else responses[::-1]
    return [_pair_record(record, default_id, prompt, chosen, rejected, default_subset="pandalm")]


IMPORTERS: dict[str, Importer] = {
    "pairs": _import_pairs,
    "implicit": _import_implicit,
    "sharegpt": _import_sharegpt,
    "ranked": _import_ranked,
    "pandalm": _import_pandalm,
}
DETECTION = [  # (fields that must all be present, format), first match wins
    ({"conversations"}, "sharegpt"),
    ({"response1", "response2"}, "pandalm"),
    ({"instruction", "output"}, "ranked"),
    ({"prompt"}, "pairs"),
    ({"messages"}, "pairs"),
    ({"chosen", "rejected"}, "implicit"),
]


def detect_format(record: dict) -> str:
    found = next((name for required, name in DETECTION if required <= record.keys()), None)
    if found is None:
        raise DataError(f"cannot detect the format from fields {sorted(record)}; pass format= one of {list(IMPORTERS)}")
    return found
