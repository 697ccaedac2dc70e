"""Principles (a constitution) from YAML, and the judge's chat messages rendered from them.

    constitution = load_constitution(None)                    # the shipped default: six principles
    constitution = load_constitution("my-constitution.yaml")  # strict YAML: a key given twice is an error
    messages = constitution.comparison("honesty", prompt, first, second)

A principle is a name, a criterion (one sentence the judge weighs the responses by), an optional template of its
own and whether the judge may answer "tie". The labels are "A" (the first response shown), "B" (the second) and
"tie".
"""

from __future__ import annotations

import hashlib
import string
from importlib.resources import files
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from rewardkit.config import Strict, parse_yaml
from rewardkit.data.records import Message, Text
from rewardkit.errors import ConfigError

FIRST, SECOND, TIE = "A", "B", "tie"
COMPARISON_FIELDS = {"principle", "criterion", "prompt", "response_a", "response_b", "choices"}
CRITIQUE_FIELDS = {"criterion", "prompt", "response"}
REVISION_FIELDS = CRITIQUE_FIELDS | {"critique"}
DEFAULT_CONSTITUTION = files("rewardkit.judge") / "constitution.yaml"


def template_fields(template: str) -> set[str]:
    """The `{name}` placeholders of a `str.format` template; a malformed one is a ValueError."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def check_template(template: str, allowed: set[str], required: set[str]) -> str:
    fields = template_fields(template)
    if fields - allowed:
        raise ValueError(f"unknown placeholders {sorted(fields - allowed)}; allowed: {sorted(allowed)}")
    if required - fields:
        raise ValueError(f"missing placeholders {sorted(required - fields)}")
    return template


class Principle(Strict):
    criterion: str = Field(min_length=1, description="What the judge weighs the responses by, in one sentence.")
    template: str | None = Field(None, description="This principle's comparison template (default: the file's).")
    ties: bool = Field(False, description="Let the judge answer 'tie' as well as A or B.")

    @model_validator(mode="after")
    def template_fits(self) -> Principle:
        if self.template is not None:
            check_template(self.template, COMPARISON_FIELDS, {"prompt", "response_a", "response_b"})
        return self


class Constitution(Strict):
    system: str | None = Field(None, description="The judge's system message.")
    template: str = Field(description="The comparison template every principle uses unless it has its own.")
    critique_template: str = Field(description="Constitutional AI: asks for a critique of one response.")
    revision_template: str = Field(description="Constitutional AI: asks for the response revised after the critique.")
    principles: dict[str, Principle] = Field(min_length=1)

    @model_validator(mode="after")
    def templates_fit(self) -> Constitution:
        check_template(self.template, COMPARISON_FIELDS, {"prompt", "response_a", "response_b"})
        check_template(self.critique_template, CRITIQUE_FIELDS, {"prompt", "response"})
        check_template(self.revision_template, REVISION_FIELDS, {"prompt", "response", "critique"})
        return self

    def principle(self, name: str) -> Principle:
        if name not in self.principles:
            raise ConfigError(f"unknown principle {name!r}; this constitution has {list(self.principles)}")
        return self.principles[name]

    def template_of(self, name: str) -> str:
        return self.principle(name).template or self.template

    def labels(self, name: str) -> tuple[str, ...]:
        """The answers the judge may give under principle `name`."""
        return (FIRST, SECOND, TIE) if self.principle(name).ties else (FIRST, SECOND)

    def template_id(self, name: str) -> str:
        """A short hash of everything the judge is shown under `name` besides the texts (recorded with verdicts)."""
        principle = self.principle(name)
        shown = "\0".join([self.system or "", self.template_of(name), name, principle.criterion, str(principle.ties)])
        return hashlib.sha256(shown.encode()).hexdigest()[:16]

    def comparison(self, name: str, prompt: Text, first: Text, second: Text) -> list[Message]:
        """The chat asking which of `first` (A) and `second` (B) is better under principle `name`."""
        labels = self.labels(name)
        choices = f"{FIRST} or {SECOND}" if len(labels) == 2 else f"{FIRST}, {SECOND} or {TIE} (equally good)"
        text = self.template_of(name).format(
            principle=name, criterion=self.principle(name).criterion, prompt=plain_text(prompt),
            response_a=plain_text(first), response_b=plain_text(second), choices=choices)
        return self.chat(text)

    def critique(self, name: str, prompt: Text, response: Text) -> list[Message]:
        return self.chat(self.critique_template.format(
            criterion=self.principle(name).criterion, prompt=plain_text(prompt), response=plain_text(response)))

    def revision(self, name: str, prompt: Text, response: Text, critique: str) -> list[Message]:
        return self.chat(self.revision_template.format(
            criterion=self.principle(name).criterion, prompt=plain_text(prompt), response=plain_text(response),
            critique=critique))

    def chat(self, text: str) -> list[Message]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": text}]


def plain_text(text: Text) -> str:
    """Plain text as it is; a conversation as "role: content" paragraphs (one message: its content)."""
    if isinstance(text, str):
        return text
    if len(text) == 1:
        return text[0]["content"]
    return "\n\n".join(f"{message['role']}: {message['content']}" for message in text)


def load_constitution(path: str | Path | None) -> Constitution:
    """The constitution in YAML file `path` (None: the shipped default), validated; problems are ConfigErrors
    naming the file (and line, for YAML errors)."""
    where = DEFAULT_CONSTITUTION if path is None else Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read principles {where}: {err}") from None
    raw = parse_yaml(text, f"cannot read principles {where}")
    try:
        return Constitution.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid principles {where}: {problems}") from None
