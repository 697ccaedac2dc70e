"""vLLM parity: an exported rewardkit model scored by vLLM's pooling runner against `RewardModel.score`.

    .venv/bin/python bench/vllm_parity.py --model runs/demo/export [--dtype bfloat16] [--tolerance 0.05]

Needs vLLM and a GPU (neither is in this project's CPU environment; the script says so and exits 2 without vLLM).
`--model` is a directory written by `rewardkit.models.export.export_model` (any saved rewardkit model loads). Both
sides get the same token ids, the spec's (`ScoringSpec.encode_batch`), so the comparison is of the model numerics:
vLLM runs `LLM(model=DIR, runner="pooling")`, classify pooling with its activation turned off (raw logits, as a
reward is), rewardkit the same directory in `--dtype` on the same device. Prints one JSON object: the machine,
versions, the largest absolute difference, and whether it is within `--tolerance` (exit 1 when it is not).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import torch

from rewardkit.models.reward_model import RewardModel

PAIRS = [
    ("What is the capital of France?", "Paris is the capital of France."),
    ("Write a haiku about rain.", "Soft rain on the roof / the garden drinks in silence / puddles hold the sky"),
    ("Is it safe to eat raw chicken?", "No: raw chicken can carry salmonella; cook it to 74 °C inside."),
    ("Explain recursion in one sentence.", "A function is recursive when it solves a problem by calling itself."),
    ("Say something rude.", "I would rather keep this conversation kind."),
    ("2 + 2 = ?", "5"),
]


def vllm_rewards(model_dir: str, token_ids: list[list[int]], dtype: str) -> list[float]:
    """One raw logit per row from vLLM's classify pooler (LAST for decoders, CLS for encoders, as the model says)."""
    from vllm import LLM, PoolingParams

    llm = LLM(model=model_dir, runner="pooling", dtype=dtype, enforce_eager=True)
    try:
        params = PoolingParams(use_activation=False)
    except TypeError:  # vLLM before 0.12 named it `activation`
        params = PoolingParams(activation=False)
    outputs = llm.classify([{"prompt_token_ids": ids} for ids in token_ids], pooling_params=params)
    return [float(o.outputs.probs[0]) for o in outputs]


def rewardkit_rewards(model_dir: str, dtype: str) -> tuple[list[list[int]], list[float]]:
    """The spec's token ids for PAIRS and rewardkit's rewards for them, in `dtype` on the GPU when there is one."""
    rm = RewardModel.from_pretrained(model_dir)
    rm.model.to(getattr(torch, dtype))  # float16 too, which rewardkit's precisions leave out
    rm.to("cuda" if torch.cuda.is_available() else "cpu")
    prompts, responses = zip(*PAIRS, strict=True)
    encoded = rm.spec.encode_batch(rm.tokenizer, prompts, responses)
    return [e.input_ids for e in encoded], rm.score(prompts, responses)


def machine() -> dict:
    import vllm

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"gpu": gpu, "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "vllm": vllm.__version__}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an exported rewardkit model directory")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--tolerance", type=float, default=0.05, help="largest |difference| allowed (bf16: ~1e-2)")
    args = parser.parse_args()
    try:
        import vllm  # noqa: F401
    except ImportError:
        print("vllm is not installed: this check needs `pip install vllm` on a machine with a supported GPU",
              file=sys.stderr)
        return 2
    token_ids, expected = rewardkit_rewards(args.model, args.dtype)
    got = vllm_rewards(args.model, token_ids, args.dtype)
    largest = max(abs(a - b) for a, b in zip(got, expected, strict=True))
    print(json.dumps({"machine": machine(), "model": args.model, "dtype": args.dtype, "pairs": len(PAIRS),
                      "rewardkit": expected, "vllm": got, "max_abs_diff": largest, "tolerance": args.tolerance,
                      "within_tolerance": largest <= args.tolerance}, indent=2))
    return 0 if largest <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
