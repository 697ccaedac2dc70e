"""`export_model`: a trained reward model as a self-contained, hub-ready directory that scores the same in TRL,
vLLM and OpenRLHF as in rewardkit.

The directory holds the weights (safetensors), the tokenizer with the spec's chat template
(`rewardkit.models.templates`), a config with `problem_type: regression` and named outputs, `scoring_spec.json`
and a model card (`README.md`) written from the run directory around the model (`config.yaml`, `summary.json`,
`metrics.json`) where it is there.

`bake_normalization` folds the stored statistics into the score head (weight / std, (bias - mean) / std), so every
consumer gets z-scored rewards: the export's raw score is the original's `score(..., normalize=True)`, its spec's
normalization becomes mean 0, std 1 (same n) and a fitted temperature is divided by std (preference probabilities
stay the same). It needs a head with a bias (BERT-style encoders; decoders' `score` layers have none), one output
and no clip range. Ensembles are refused: their reward combines members' z-scores (mean, min, mean - k * std),
which no single sequence classifier computes; export each member instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

import rewardkit
from rewardkit.errors import ConfigError, ModelError
from rewardkit.io import check_output_dir, write_text_atomic
from rewardkit.models.backbones import head_linear
from rewardkit.models.ensemble import is_ensemble
from rewardkit.models.reward_model import RewardModel
from rewardkit.models.spec import Normalization

BUNDLED_DATA = Path(rewardkit.__file__).parent / "demo_data"
UNKNOWN_LICENCE = "not recorded: check the source's terms"


def export_model(model_dir: str | Path, out_dir: str | Path, *, bake_normalization: bool = False,
                 force: bool = False) -> Path:
    """Write the model in `model_dir` to `out_dir` (see the module docstring); returns `out_dir`.

    An existing non-empty `out_dir` is a ConfigError unless `force`; a directory that is not a trained model (or is
    an ensemble) is a ModelError."""
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if is_ensemble(model_dir):
        raise ModelError(f"{model_dir} is an ensemble: its reward combines its members' z-scores, which no single "
                         f"model computes; export each member ({model_dir}/member-*) instead")
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ConfigError(f"{out_dir} exists and is not empty: pass --force (force=True) to replace it")
    check_output_dir(out_dir)
    rm = RewardModel.from_pretrained(model_dir)
    if bake_normalization:
        bake(rm)
    rm.save_pretrained(out_dir)
    write_text_atomic(out_dir / "README.md", model_card(rm, model_dir.parent))
    return out_dir


def bake(rm: RewardModel) -> None:
    """Fold the spec's normalization into the score head and the spec (mean 0, std 1, temperature / std)."""
    spec, norm = rm.spec, rm.spec.normalization
    if norm is None:
        raise ConfigError("--bake-normalization: this model has no normalization statistics to bake")
    if spec.clip is not None or rm.num_attributes != 1 or spec.task == "process":
        raise ConfigError("--bake-normalization needs one output, not a process model, and no clip range: a linear "
                          "head cannot compute anything else")
    linear = head_linear(rm.model)
    if linear.bias is None:
        raise ConfigError(f"--bake-normalization: the score head of {type(rm.model).__name__} has no bias to hold "
                          "the mean; export without it (the stored statistics travel in scoring_spec.json)")
    with torch.no_grad():
        linear.weight.div_(norm.std)
        linear.bias.sub_(norm.mean).div_(norm.std)
    temperature = spec.temperature / norm.std if spec.temperature else None
    rm.spec = spec.model_copy(update={"normalization": Normalization(mean=0.0, std=1.0, n=norm.n),
                                      "temperature": temperature})


# ---- the model card -------------------------------------------------------------------------------------------
def model_card(rm: RewardModel, run_dir: Path) -> str:
    """README.md for the exported model: what it is, what it was trained on, how well it does, how to call it."""
    spec = rm.spec
    sections = [
        "---\nlibrary_name: transformers\npipeline_tag: text-classification\ntags: [reward-model, rewardkit]\n---\n",
        "# Reward model (rewardkit)\n",
        f"- Backbone: `{spec.backbone}` ({rm.model.config.architectures[0]}), {spec.max_length} tokens, "
        f"{spec.format} rendering, {spec.pooling}-token pooling",
        f"- Task: {spec.task}, loss: {spec.loss or 'not recorded'}; "
        f"outputs: {', '.join(spec.attributes or ['reward'])}",
        f"- Rewards: {normalization_line(spec)}\n",
        data_section(run_dir),
        metrics_section(run_dir),
        USAGE,
        limitations_section(spec),
    ]
    return "\n".join(s for s in sections if s)


def normalization_line(spec) -> str:
    norm = spec.normalization
    if norm is None:
        return "raw (no normalization statistics)"
    if (norm.mean, norm.std) == (0.0, 1.0):
        return f"z-scored: the statistics of {norm.n} held-out responses are folded into the score head"
    return f"raw; z-score with mean {norm.mean:.4g}, std {norm.std:.4g} (scoring_spec.json, {norm.n} responses)"


def data_section(run_dir: Path) -> str:
    rows = [f"| {split} | `{path}` | {subset or ''} | {'' if loaded is None else loaded} | {source_licence(path)} |"
            for split, path, subset, loaded in data_sources(run_dir)]
    if not rows:
        return ""
    return "## Training data\n\n| split | source | subset | records used | licence |\n|---|---|---|---|---|\n" + (
        "\n".join(rows) + "\n")


def data_sources(run_dir: Path) -> list[tuple[str, str, str | None, int | None]]:
    """(split, path, subset, records loaded) from summary.json, else from config.yaml, else none."""
    summary, config = run_dir / "summary.json", run_dir / "config.yaml"
    if summary.is_file():
        sources = json.loads(summary.read_text(encoding="utf-8")).get("sources", {})
        return [(split, path, info.get("subset"), info.get("loaded"))
                for split, files in sources.items() for path, info in files.items()]
    if config.is_file():
        data = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data", {})
        return [(split, source["path"], source.get("subset"), None)
                for split in ("train", "eval") for source in data.get(split) or []]
    return []


def source_licence(path: str) -> str:
    """The licence column of the data README's row for this file (beside it, or rewardkit's bundled data)."""
    name = Path(path).name
    for readme in (Path(path).parent / "README.md", BUNDLED_DATA / "README.md"):
        if readme.is_file():
            for line in readme.read_text(encoding="utf-8").splitlines():
                cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
                if len(cells) > 1 and cells[0].strip("`") == name:
                    return cells[-1]
    return UNKNOWN_LICENCE


def metrics_section(run_dir: Path) -> str:
    """Held-out accuracy with its 95% CI, overall and by subset, and the length baseline (metrics.json)."""
    path = run_dir / "metrics.json"
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    groups = {"overall": metrics.get("overall", {}), **metrics.get("subsets", {})}
    rows = [f"| {name} | {m['accuracy']:.3f} | [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}] | {m['n']} |"
            for name, m in groups.items() if {"accuracy", "ci95", "n"} <= m.keys()]
    if not rows:
        return ""
    baseline = metrics.get("length_baseline", {}).get("accuracy")
    note = f"\nLength baseline (prefer the longer response): {baseline:.3f}.\n" if baseline is not None else ""
    return ("## Held-out metrics\n\n| set | accuracy | 95% CI | pairs |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n" + note)


USAGE = '''## Usage

The tokenizer's chat template renders a conversation (the last message is the scored reply) exactly as rewardkit
does; tokenize it without adding special tokens and read the first logit:

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("DIR")
model = AutoModelForSequenceClassification.from_pretrained("DIR")
text = tokenizer.apply_chat_template(messages, tokenize=False)
reward = model(**tokenizer(text, add_special_tokens=False, return_tensors="pt")).logits[0, 0]
```

- TRL: `GRPOTrainer(..., reward_funcs="DIR")` with conversational prompts (TRL renders them with this template).
- vLLM: run it with the pooling runner and pass the ids above as `TokensPrompt(prompt_token_ids=...)`;
  `problem_type: regression` in the config asks for the raw output, not a sigmoid.
- OpenRLHF: `rewardkit serve DIR` and `--remote_rm_url http://HOST:PORT/get_reward`.
- rewardkit: `RewardModel.from_pretrained("DIR").score(prompts, responses)`.
'''


def limitations_section(spec) -> str:
    items = [
        f"Pairs over {spec.max_length} tokens: rewardkit cuts the prompt from the left (never the reply); a chat "
        "template cannot, so other consumers see the whole text or their own truncation.",
        "Special-token text (e.g. a literal end-of-turn marker) inside a message is text to rewardkit but a special "
        "token to a plain tokenizer call.",
        "TRL scores non-conversational data as prompt + completion without the template: use conversations.",
    ]
    if spec.token_type_ids:
        items.insert(1, "Token types: the model was trained with token_type_ids 0 for the prompt and 1 from the "
                        "token after the first separator on. A tokenizer call without special tokens gives zeros "
                        "(as does passing none), and the rewards then differ (TRL's reward path passes zeros): pass "
                        "`token_type_ids=((sep.cumsum(-1) - sep) > 0).long()`, "
                        "`sep = (input_ids == tokenizer.sep_token_id).long()`.")
    return "## Limitations\n\n" + "\n".join(f"- {item}" for item in items) + "\n"
