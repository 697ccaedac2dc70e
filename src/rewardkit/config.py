"""Training configuration: YAML, then `--set key=value` overrides, then pydantic validation.

    config = load_config("configs/minilm.yaml", ["optim.lr=1e-5", "train.epochs=2"])

YAML is read strictly: a key given twice in one mapping is an error naming its line, not a silent last value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rewardkit.errors import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses a key given twice in one mapping (keys merged in with `<<` may be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        lines: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = self.construct_object(key_node)
                if key in lines:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}' (first given on line {lines[key]})", key_node.start_mark)
                lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> object:
    """`text` as YAML (`UniqueKeyLoader`); when it cannot be read, a one-line `ConfigError` "WHERE:LINE: problem"
    (the line only for a text of several lines)."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.MarkedYAMLError as err:
        line = f":{err.problem_mark.line + 1}" if err.problem_mark and "\n" in text.strip() else ""
        context = f"{err.context}: " if err.context else ""
        raise ConfigError(f"{where}{line}: {context}{err.problem}") from None
    except yaml.YAMLError as err:  # a reader error: a character YAML does not allow
        raise ConfigError(f"{where}: {' '.join(str(err).split())}") from None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # epochs=.inf or betas=[.nan, ...] are refused


class LoraConfig(Strict):
    r: int = Field(16, gt=0, description="Rank of the LoRA update.")
    alpha: int = Field(32, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="Modules that get adapters.")
    quantize_4bit: bool = Field(
        False, description="QLoRA: load the frozen backbone in 4-bit (needs bitsandbytes, CUDA).")


class ModelConfig(Strict):
    backbone: str = Field(
        "minilm-l6", description="Built-in name (minilm-l6, smollm2-135m), hub id, directory or .gguf.")
    max_length: int = Field(512, gt=8, description="Tokens per pair; the prompt is cut from the left to fit.")
    format: Literal["auto", "chat_template", "plain"] = "auto"
    trust_remote_code: bool = False
    gradient_checkpointing: bool = False
    token_type_ids: bool = Field(
        False, description="Encoders: BERT-style token types (prompt 0, reply 1). Off: consumers that render "
                           "through the exported chat template (TRL, vLLM) pass none, and would score differently.")
    disable_dropout: bool = Field(
        True, description="Zero the backbone's dropout (the usual choice for reward models).")
    lora: LoraConfig | None = Field(
        None, description="Train LoRA adapters (plus the score head) instead of all weights.")


class SourceConfig(Strict):
    path: str = Field(description="Local file (relative paths resolve against the config file) or hub dataset name.")
    format: str = "auto"
    split: str = "train"
    subset: str | None = Field(None, description="Name the pairs' subset (for per-source metrics).")
    max_pairs: int | None = Field(None, gt=0, description="Keep at most this many records (a seeded sample).")
    ties: Literal["drop", "keep"] = Field("drop", description="Pairs annotated as ties: drop them, or keep them: a "
                                          "tie-aware loss (task.loss rao_kupper or davidson) trains on them, and "
                                          "every loss is evaluated on the held-out ones.")
    min_agreement: float = Field(0.0, ge=0, le=1, description="Drop multi-annotator pairs with a weaker majority.")
    weight_by_agreement: bool = Field(False, description="Weight multi-annotator pairs by their majority's share.")


class MixtureConfig(Strict):
    """The share of each source (a pair's `subset`) in training: pairs are resampled to it (seeded, same total)."""

    weights: dict[str, float] | None = Field(
        None, description="Target share of each subset, normalized to sum 1; every trained subset must be named.")
    temperature: float | None = Field(
        None, gt=0, description="Shares proportional to pairs^(1/T): 1 keeps the sizes' proportions, larger T moves "
                                "towards uniform.")

    @model_validator(mode="after")
    def one_rule(self) -> MixtureConfig:
        if (self.weights is None) == (self.temperature is None):
            raise ValueError("a mixture needs exactly one of weights and temperature")
        if self.weights is not None and (any(w < 0 for w in self.weights.values()) or not sum(self.weights.values())):
            raise ValueError("mixture weights must be >= 0 with a positive sum")
        return self


class DataConfig(Strict):
    train: list[SourceConfig] = Field(min_length=1)
    eval: list[SourceConfig] = Field(
        default_factory=list, description="Held-out sources; empty: split train by prompt.")
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="Share of prompts held out when `eval` is empty.")
    max_pairs_per_prompt: int | None = Field(None, gt=0)
    on_bad_record: Literal["error", "skip"] = "error"
    mixture: MixtureConfig | None = Field(
        None, description="pairwise: resample the training pairs (after the held-out split) to these source shares.")
    length_balance: bool = Field(
        False, description="pairwise: reweight each source's training pairs so the chosen reply is the longer one "
                           "(in tokens) in exactly half of their weight; pairs of equal length keep their weight.")


TASK_LOSSES = {"pairwise": ("bradley_terry", "rao_kupper", "davidson"), "listwise": ("plackett_luce", "bradley_terry"),
               "pointwise": ("mse", "bce"), "process": ("bce",)}


class LengthHeadConfig(Strict):
    """ODIN (Chen et al., 2024): a second output carries length; only the first (quality) is scored and exported."""

    length_weight: float = Field(1.0, ge=0, description="Weight of the batch correlation loss "
                                                        "|corr(quality, length)| - |corr(length head, length)|.")
    orthogonality_weight: float = Field(1.0, ge=0, description="Weight of |w_quality . w_length|, the two output "
                                                               "rows of the score head.")


class TaskConfig(Strict):
    """What one example is and what the model learns from it (`rewardkit.tasks`)."""

    type: Literal["pairwise", "listwise", "pointwise", "process"] = Field(
        "pairwise", description="pairwise: preference pairs; listwise: rankings of K responses; pointwise: ratings "
                                "or verifier labels per response; process: per-step labels of solutions.")
    loss: Literal["bradley_terry", "rao_kupper", "davidson", "plackett_luce", "mse", "bce"] | None = Field(
        None, description="pairwise: bradley_terry (ties dropped), rao_kupper or davidson (ties train both sides "
                          "alike); listwise: plackett_luce, or bradley_terry over each ranking's pairs; pointwise: "
                          "mse (ratings) or bce (0/1 labels); process: bce. Default: the first of each.")
    tie_strength: float | None = Field(None, gt=0, description="Rao-Kupper theta (> 1) or Davidson nu; None: the "
                                                                "loss's default.")
    weight_per_prompt: bool = Field(False, description="Each prompt counts once however many pairs it has "
                                                       "(InstructGPT): pairwise weighs pairs 1/(pairs of their "
                                                       "prompt); listwise bradley_terry averages within a ranking "
                                                       "instead of weighing every pair alike.")
    attributes: list[str] | None = Field(None, description="pointwise: the labels to learn, one output each.")
    attribute_weights: dict[str, float] | None = Field(
        None, description="pointwise: default weights of the attributes in the scalar reward (None: the mean).")
    step_separator: str = Field("<|step|>", description="process: the token ending each step (added when new).")
    last_step_only: bool = Field(False, description="process: supervise only each solution's last step.")
    length_head: LengthHeadConfig | None = Field(
        None, description="pairwise: train a disentangled length head (ODIN); the pair loss reads quality + length. "
                          "Batches then mix lengths (train.length_grouping defaults to false).")

    @model_validator(mode="after")
    def loss_fits_type(self) -> TaskConfig:
        allowed = TASK_LOSSES[self.type]
        if self.loss is None:
            self.loss = allowed[0]
        elif self.loss not in allowed:
            raise ValueError(f"loss {self.loss} does not fit task type {self.type}: use one of {list(allowed)}")
        if self.type == "pointwise" and not self.attributes:
            raise ValueError("a pointwise task needs attributes: the label names to learn, e.g. [score]")
        unknown = set(self.attribute_weights or {}) - set(self.attributes or [])
        if unknown:
            raise ValueError(f"attribute_weights names attributes that are not in attributes: {sorted(unknown)}")
        if self.loss == "rao_kupper" and self.tie_strength is not None and self.tie_strength <= 1:
            raise ValueError("Rao-Kupper needs tie_strength (theta) > 1")
        if self.length_head is not None and self.type != "pairwise":
            raise ValueError(f"length_head (ODIN) needs task type pairwise, not {self.type}")
        return self


class OptimConfig(Strict):
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warmup.")
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this norm; null: no clipping.")


class TrainLoopConfig(Strict):
    seed: int = 0
    epochs: float = Field(1.0, gt=0, description="Passes over the training pairs (fractions allowed).")
    batch_size: int = Field(8, gt=0, description="Pairs per optimizer step, across all processes.")
    gradient_accumulation_steps: int = Field(1, gt=0)
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast where the hardware has it (REWARDKIT_AUTO_PRECISION=bf16|fp32 "
                            "forces what auto means).")
    use_margin: bool = Field(False, description="Use each pair's `margin` in the loss.")
    center_rewards_coefficient: float = Field(0.0, ge=0)
    log_every: int = Field(10, gt=0)
    eval_every: int | None = Field(None, gt=0, description="Evaluate every N optimizer steps (and always at the end).")
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop after N evaluations without improvement.")
    save_every: int | None = Field(None, gt=0, description="Write a resumable checkpoint every N optimizer steps.")
    keep_checkpoints: int = Field(2, gt=0)
    resume: str | None = Field(None, description="'latest' or a checkpoint directory.")
    length_grouping: bool = Field(True, description="Batch pairs of similar length together (less padding).")
    share_prefix: bool | Literal["auto"] = Field(
        "auto", description="Compute the prompt shared by chosen and rejected once (decoders; auto: on for them)."
    )
    stuck_loss_steps: int = Field(50, gt=0, description="Warn when the loss sits at ln 2 for this many steps.")
    sharding: Literal["none", "fsdp"] = Field(
        "none", description="fsdp: shard weights, gradients and optimizer state over the processes (FSDP2 "
                            "fully_shard; CPUs too). accelerate's FSDP plugin turns it on by itself on GPUs.")
    tensorboard: bool = False
    ensemble: int = Field(1, gt=0, description="Train this many members (seeds seed, seed+1, ...) into one "
                                               "ensemble directory.")
    ensemble_sampling: Literal["bootstrap", "disjoint"] = Field(
        "bootstrap", description="Each member's training data: a bootstrap resample, or a disjoint share.")

    @model_validator(mode="after")
    def patience_needs_eval(self) -> TrainLoopConfig:
        if self.early_stopping_patience and not self.eval_every:
            raise ValueError("early_stopping_patience needs eval_every")
        return self


class TrainConfig(Strict):
    model: ModelConfig = ModelConfig()
    task: TaskConfig = TaskConfig()
    data: DataConfig
    optim: OptimConfig = OptimConfig()
    train: TrainLoopConfig = TrainLoopConfig()

    @model_validator(mode="after")
    def debiasing_fits(self) -> TrainConfig:
        if (self.data.mixture or self.data.length_balance) and self.task.type != "pairwise":
            raise ValueError(f"data.mixture and data.length_balance need task type pairwise, not {self.task.type}")
        if self.task.length_head and self.train.length_grouping:
            # ODIN's correlations are taken within a batch: batches of one length would measure nothing
            if "length_grouping" in self.train.model_fields_set:
                raise ValueError("task.length_head (ODIN) correlates rewards with length within each batch: it "
                                 "needs train.length_grouping false")
            self.train.length_grouping = False
        return self


def load_config(path: str | Path | None, overrides: list[str] = (), base: dict | None = None) -> TrainConfig:
    """Read YAML (or start from `base`), apply dotted `key=value` overrides, validate."""
    raw = dict(base or {})
    if path is not None:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config {path}: {err}") from None
        raw = parse_yaml(text, f"cannot read config {path}") or {}
        resolve_source_paths(raw, path.parent)
    for override in overrides:
        apply_override(raw, override)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise ConfigError(f"invalid config{f' {path}' if path else ''}: {problems}") from None


def apply_override(raw: dict, override: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (numbers, booleans, lists, null).
    A number addresses a list item: `data.train.0.ties=keep`."""
    key, sep, value = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r} is not key=value")
    *parents, leaf = key.split(".")
    node = raw
    for part in parents:
        if isinstance(node, list):
            node = list_item(node, part, override)
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {override!r}: {part} is not a section")
    if isinstance(node, list):
        list_item(node, leaf, override)  # the index must exist
        leaf = int(leaf)
    node[leaf] = parse_yaml(value, f"override {override!r}")


def list_item(items: list, index: str, override: str):
    if not index.isdigit() or int(index) >= len(items):
        raise ConfigError(f"override {override!r}: {index} is not an index of a list of {len(items)}")
    return items[int(index)]


def resolve_source_paths(raw: dict, config_dir: Path) -> None:
    """Relative data paths in a config file are relative to that file (when such a file exists)."""
    if not isinstance(raw, dict) or not isinstance(raw.get("data") or {}, dict):
        raise ConfigError("a config is a mapping with model, data, optim and train sections")
    for split in ("train", "eval"):
        for source in (raw.get("data") or {}).get(split) or []:
            if not isinstance(source, dict):
                raise ConfigError(f"data.{split}: each source is a mapping like {{path: pairs.jsonl}}, not {source!r}")
            candidate = config_dir / str(source.get("path", ""))
            if not Path(source.get("path", "")).is_absolute() and candidate.exists():
                source["path"] = str(candidate.resolve())
