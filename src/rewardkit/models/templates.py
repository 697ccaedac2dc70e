"""The chat template a saved model carries, so that consumers that never call rewardkit score the same ids.

TRL's GRPOTrainer (and vLLM's chat endpoints) render a conversation with the reward tokenizer's own template and
tokenize it without adding special tokens::

    text = tokenizer.apply_chat_template(messages, tokenize=False)   # the last message is the scored reply
    ids = tokenizer(text, add_special_tokens=False).input_ids

`chat_template_for` builds, from a `ScoringSpec`, the template for which `ids` equals
`spec.encode(tokenizer, messages[:-1], messages[-1:]).input_ids`, special tokens included ([CLS] ... [SEP] [SEP] for
encoders, BOS / EOS for decoders). A backbone template with no special tokens around it is the spec's rendering
already and is kept as it is. With `add_generation_prompt=True` it renders every message as the prompt, up to
where the reply would start.

What no template can do (the consumer gets other ids or other inputs than `RewardModel.score` in these cases):

- Truncation: the spec cuts a pair longer than `max_length` from the left of the prompt (the reply is never cut);
  a template renders the whole conversation, and the consumer's tokenizer truncates on its own side (or not).
  Pairs within `max_length` are unaffected.
- Token types (BERT-style encoders trained with `token_type_ids`, as the MiniLM demo model is): the spec marks the
  prompt 0 and the reply 1 (from the first [SEP] on). `tokenizer(text, add_special_tokens=False)` returns all
  zeros, and a BERT model given no token_type_ids uses zeros too, so such a consumer's scores differ from
  `RewardModel.score` however the text is rendered. It must pass token_type_ids = 1 from the token after the first
  [SEP] on (or tokenize (prompt text, reply) as a text pair with special tokens, which gives the same ids and
  types); specs without token types (decoders, encoders trained with `token_type_ids: false`) are unaffected.
- Special-token text inside messages: in plain format the spec tokenizes a literal "[SEP]" or "<s>" in a message
  as text; a consumer's tokenizer reads it as the special token.
- Text boundaries: the spec tokenizes prompt and reply apart; the consumer tokenizes the rendered text in one
  piece. The two agree where a special token or a pre-tokenizer split separates them (always for WordPiece
  encoders; for byte-level BPE after the chat template's role header or plain format's "Assistant:"), but a
  reply starting with punctuation right after "Assistant:" can merge with it in a BPE vocabulary.
- Plain-text prompts: TRL scores non-conversational data as `prompt + completion` with no template at all; pass
  conversations (`[{"role": "user", "content": prompt}]`) instead.
"""

from __future__ import annotations

import json

from rewardkit.errors import ModelError
from rewardkit.models.spec import ROLE_NAMES, ScoringSpec

# conversations on which `check_chat_template` proves a template (short enough for any max_length in use)
PROBES = (
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Red."}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}, {"role": "assistant", "content": "Why did the hen cross?"}],
)

# the prompt: every message but the last (the reply), or all of them for a generation prompt
PROMPT = "{%- set prompt = messages if add_generation_prompt else messages[:-1] -%}"

# ScoringSpec's plain format (`render_plain`): "Role: content" turns, then "Assistant:" unless a reply ends them
PLAIN_HEAD = (
    "{%- set roles = ROLES -%}"
    "{%- set ns = namespace(head='') -%}"
    "{%- for m in prompt -%}"
    "{%- set ns.head = ns.head + ('' if loop.first else '\\n\\n') + roles.get(m['role'], m['role']) + ': '"
    " + m['content'] -%}"
    "{%- endfor -%}"
    "{%- set head = ns.head + ('\\n\\nAssistant:' if prompt and prompt[-1]['role'] != 'assistant' else '') -%}"
)
PLAIN_REPLY = "{{- messages[-1]['content'] -}}"

# ScoringSpec's chat_template format: the backbone's template, the reply being what follows the generation prompt
CHAT_HEAD = (
    "{%- macro backbone_template(messages, add_generation_prompt) %}TEMPLATE{% endmacro -%}"
    "{%- set head = backbone_template(prompt, true) if prompt else '' -%}"
)
CHAT_REPLY = "{{- backbone_template(messages, false)[(head | length):] -}}"

# the spec's layout: prefix + prompt + separator + reply + suffix
LAYOUT = "{{- PREFIX + head + SEPARATOR -}}{%- if not add_generation_prompt -%}REPLY{{- SUFFIX -}}{%- endif -%}"


def chat_template_for(spec: ScoringSpec, tokenizer) -> str:
    """The Jinja chat template rendering a conversation (the last message the scored reply) as `spec` does, proven
    on a few conversations (`check_chat_template`); see the module docstring for what it cannot reproduce."""
    template = build_chat_template(spec)
    check_chat_template(spec, tokenizer, template)
    return template


def build_chat_template(spec: ScoringSpec) -> str:
    """`spec`'s rendering as one Jinja template (the backbone's own one where it needs no special tokens added)."""
    prefix, separator, suffix = ("".join(tokens) for tokens in spec.special_token_lists())
    if spec.format == "chat_template" and not (prefix or separator or suffix):
        return spec.chat_template
    if spec.format == "plain":
        head, reply = PLAIN_HEAD.replace("ROLES", json.dumps(ROLE_NAMES)), PLAIN_REPLY
    else:
        head, reply = CHAT_HEAD.replace("TEMPLATE", spec.chat_template), CHAT_REPLY
    layout = (LAYOUT.replace("PREFIX", json.dumps(prefix)).replace("SEPARATOR", json.dumps(separator))
              .replace("SUFFIX", json.dumps(suffix)).replace("REPLY", reply))
    return PROMPT + head + layout


def check_chat_template(spec: ScoringSpec, tokenizer, template: str) -> None:
    """A ModelError naming the first probe conversation whose template-rendered ids are not the spec's ids."""
    for messages in PROBES:
        prompt, reply = messages[:-1], messages[-1:]
        if spec.untruncated_length(tokenizer, prompt, reply) > spec.max_length:
            continue  # the spec would truncate it: no template can
        expected = spec.encode(tokenizer, prompt, reply).input_ids
        if template_ids(tokenizer, template, messages) != expected:
            raise ModelError(f"no chat template reproduces this model's rendering of {messages!r} with its "
                             "tokenizer; consumers must render text through rewardkit (`rewardkit serve`)")


def template_ids(tokenizer, template: str, messages: list[dict]) -> list[int]:
    """The ids a consumer gets: the conversation rendered by `template`, tokenized without added special tokens."""
    text = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
