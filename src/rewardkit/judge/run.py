"""Judging items in both orders, through the cache, into rewardkit's pair format: what `rewardkit judge` runs.

    result = judge_items(items, judge, constitution, JudgeCache("runs/judge/cache.jsonl"), JudgeOptions())
    result.pairs      # pair records: write them with rewardkit.io.write_jsonl_atomic; `rewardkit train` reads them
    result.summary    # calls, cached, failures, first-slot win rate, consistency rate, ...

Every item is judged under its principle(s) twice: a shown first ("ab") and b shown first ("ba"). Each order's
winner is a vote, in the output pair's orientation (1 = chosen better, 2 = rejected better, 0 = tie): `votes`
holds both, so `agreement` (the share of the most-voted option, as `PreferencePair.agreement` computes it) is 1.0
when the orders agree and 0.5 when they do not, and training's `min_agreement: 1.0` keeps only consistent
verdicts. `chosen` is the side with more votes, else the side with the higher combined probability (the mean of
the two orders'). `confidence` is the combined probability of the output's verdict; it is written as `weight`
(`confidence_as="weight"`), as `margin` = 2 * confidence - 1 (Llama 2's scale: 0 unsure, 1 certain; train with
`train.use_margin`), or not used (`"none"`). Both orders tie: a tie pair. `require_agreement` "tie" or "drop":
an inconsistent item becomes a tie pair, or is left out.

An item whose request failed (after the judge's retries) is not in `pairs`: it is in `summary["failures"]` with
its error, and its failure stays in the cache until a run with `retry_failed` asks again.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from rewardkit.data.records import Message, prompt_key
from rewardkit.judge.cache import JudgeCache, request_key
from rewardkit.judge.items import JudgeItem, Side
from rewardkit.judge.judges import Failure, Judge, Verdict
from rewardkit.judge.principles import FIRST, SECOND, TIE, Constitution
from rewardkit.progress import counting_progress

ORDERS = ("ab", "ba")
ConfidenceUse = Literal["weight", "margin", "none"]


@dataclass(frozen=True)
class JudgeOptions:
    principles: tuple[str, ...] | None = None  # None: every principle of the constitution
    principle_mode: Literal["sample", "each"] = "sample"  # one seeded principle per item, or every principle
    require_agreement: Literal["tie", "drop"] | None = None
    confidence_as: ConfidenceUse = "weight"
    retry_failed: bool = False
    seed: int = 0
    show_progress: bool = True


@dataclass(frozen=True)
class Request:
    """One comparison: `item` under `principle`, in `order`."""

    item: JudgeItem
    principle: str
    order: str
    key: str
    chat: list[Message]
    labels: tuple[str, ...]


@dataclass
class JudgeResult:
    pairs: list[dict]
    summary: dict
    outcomes: list[Outcome] = field(default_factory=list)  # every judged (item, principle), for `quality`


@dataclass(frozen=True)
class Outcome:
    """Both orders' verdicts on `item` under `principle`, combined."""

    item: JudgeItem
    principle: str
    verdicts: tuple[Verdict, Verdict]  # ab, ba

    @property
    def winners(self) -> tuple[Side, Side]:
        """Each order's winner as a side of the item."""
        ab, ba = (verdict.label for verdict in self.verdicts)
        return {FIRST: "a", SECOND: "b", TIE: "tie"}[ab], {FIRST: "b", SECOND: "a", TIE: "tie"}[ba]

    @property
    def combined(self) -> dict[Side, float]:
        """P(a better), P(b better), P(tie): each the mean over the two orders."""
        ab, ba = (verdict.probabilities for verdict in self.verdicts)
        return {"a": (ab[FIRST] + ba[SECOND]) / 2, "b": (ab[SECOND] + ba[FIRST]) / 2,
                "tie": (ab.get(TIE, 0.0) + ba.get(TIE, 0.0)) / 2}

    @property
    def consistent(self) -> bool:
        return self.winners[0] == self.winners[1]

    @property
    def verdict(self) -> Side:
        """The combined verdict: "tie" when both orders tie, else the side with more votes, else the more probable."""
        winners, combined = self.winners, self.combined
        if winners == ("tie", "tie"):
            return "tie"
        a, b = winners.count("a"), winners.count("b")
        if a != b:
            return "a" if a > b else "b"
        return "a" if combined["a"] >= combined["b"] else "b"


def principles_for(item: JudgeItem, constitution: Constitution, options: JudgeOptions) -> list[str]:
    names = list(options.principles or constitution.principles)
    if options.principle_mode == "each":
        return names
    return [random.Random(f"{options.seed}:{item.id}").choice(names)]


def plan_requests(items: Sequence[JudgeItem], judge: Judge, constitution: Constitution,
                  options: JudgeOptions) -> list[Request]:
    """Both orders of every item under its principle(s), each with its cache key."""
    for name in options.principles or ():
        constitution.principle(name)  # an unknown name is a ConfigError before any work
    requests = []
    for item in items:
        for principle in principles_for(item, constitution, options):
            criterion = constitution.principle(principle).criterion
            for order in ORDERS:
                first, second = (item.a, item.b) if order == "ab" else (item.b, item.a)
                key = request_key(
                    judge=judge.id, kind="compare", template=constitution.template_id(principle),
                    principle=[principle, criterion], prompt=prompt_key(item.prompt),
                    responses=[prompt_key(first), prompt_key(second)], order=order)
                requests.append(Request(item, principle, order, key,
                                        constitution.comparison(principle, item.prompt, first, second),
                                        constitution.labels(principle)))
    return requests


def pending(requests: Sequence[Request], cache: JudgeCache, retry_failed: bool) -> list[Request]:
    """The requests to send: not in the cache, or failed there and `retry_failed`; each key once."""
    todo, seen = [], set()
    for request in requests:
        entry = cache.get(request.key)
        if request.key not in seen and (entry is None or (retry_failed and "error" in entry)):
            todo.append(request)
            seen.add(request.key)
    return todo


def cache_entry(request: Request, result: Verdict | Failure) -> dict:
    base = {"key": request.key, "kind": "compare", "item": request.item.id, "principle": request.principle,
            "order": request.order}
    if isinstance(result, Failure):
        return base | {"error": result.error, "attempts": result.attempts}
    return base | {"verdict": result.to_dict()}


def send(requests: Sequence[Request], judge: Judge, cache: JudgeCache, *, show_progress: bool) -> int:
    """Ask the judge `requests` in batches of `judge.batch_size`, caching each batch as it returns; the failures.
    Requests go shortest first, so a batch holds chats of about one length (little padding)."""
    requests, failures = sorted(requests, key=lambda request: sum(len(m["content"]) for m in request.chat)), 0
    with counting_progress(enabled=show_progress) as progress:
        task = progress.add_task("judge", total=len(requests), unit="")
        for start in range(0, len(requests), judge.batch_size):
            batch = requests[start:start + judge.batch_size]
            results = judge.compare([request.chat for request in batch], batch[0].labels) if same_labels(batch) \
                else [judge.compare([request.chat], request.labels)[0] for request in batch]
            cache.put_many([cache_entry(request, result) for request, result in zip(batch, results, strict=True)])
            failures += sum(isinstance(result, Failure) for result in results)
            speed = progress.tasks[0].speed or 0.0
            progress.update(task, advance=len(batch), unit=f"calls  {speed:.2f}/s  {failures} failed")
    return failures


def same_labels(batch: Sequence[Request]) -> bool:
    return len({request.labels for request in batch}) == 1


def dry_run(items: Sequence[JudgeItem], judge: Judge, constitution: Constitution, cache: JudgeCache,
            options: JudgeOptions) -> dict:
    """How many calls and input tokens the run would make (cached answers cost nothing)."""
    requests = plan_requests(items, judge, constitution, options)
    todo = pending(requests, cache, options.retry_failed)
    return {"items": len(items), "comparisons": len(requests), "cached": len(requests) - len(todo),
            "calls": len(todo), "input_tokens": sum(judge.count_tokens(request.chat) for request in todo),
            "judge": judge.id}


def judge_items(items: Sequence[JudgeItem], judge: Judge, constitution: Constitution, cache: JudgeCache,
                options: JudgeOptions) -> JudgeResult:
    """Judge every item as the module docstring says; answers already in `cache` are not asked again."""
    requests = plan_requests(items, judge, constitution, options)
    todo = pending(requests, cache, options.retry_failed)
    send(todo, judge, cache, show_progress=options.show_progress)
    outcomes, failures = collect(requests, cache)
    pairs, counts = [], Counter()
    for outcome in outcomes:
        pair = output_pair(outcome, judge.id, constitution, options, each=options.principle_mode == "each")
        counts["consistent"] += outcome.consistent
        if pair is None:
            counts["dropped_inconsistent"] += 1
        else:
            pairs.append(pair)
            counts["ties"] += bool(pair.get("tie"))
    summary = {
        "judge": judge.id, "items": len(items), "comparisons": len(requests), "calls": len(todo),
        "cached": len(requests) - len(todo), "judged": len(outcomes), "failed": len(failures),
        "pairs": len(pairs), "ties": counts["ties"], "dropped_inconsistent": counts["dropped_inconsistent"],
        "consistency_rate": counts["consistent"] / len(outcomes) if outcomes else None,
        **position_stats(outcomes), "failures": failures,
    }
    return JudgeResult(pairs, summary, outcomes)


def collect(requests: Sequence[Request], cache: JudgeCache) -> tuple[list[Outcome], list[dict]]:
    """(the outcomes of every (item, principle) with both orders answered, the failure of every other)."""
    outcomes, failures = [], []
    for ab, ba in zip(requests[::2], requests[1::2], strict=True):
        entries = [cache.get(ab.key), cache.get(ba.key)]
        errors = [f"{request.order}: {entry['error']}" for request, entry in zip((ab, ba), entries, strict=True)
                  if "error" in entry]
        if errors:
            failures.append({"id": ab.item.id, "principle": ab.principle, "error": "; ".join(errors)})
        else:
            outcomes.append(Outcome(ab.item, ab.principle, tuple(Verdict.from_dict(e["verdict"]) for e in entries)))
    return outcomes, failures


def position_stats(outcomes: Sequence[Outcome]) -> dict:
    """First-slot win rate: the share of the verdicts that pick a side which pick the response shown first."""
    labels = [verdict.label for outcome in outcomes for verdict in outcome.verdicts]
    decided = [label for label in labels if label != TIE]
    return {"first_slot_win_rate": decided.count(FIRST) / len(decided) if decided else None,
            "verdict_ties": labels.count(TIE)}


def output_pair(outcome: Outcome, judge_id: str, constitution: Constitution, options: JudgeOptions,
                *, each: bool) -> dict | None:
    """The item as a pair record (the module docstring), or None when it is inconsistent and dropped."""
    item, verdict, combined = outcome.item, outcome.verdict, outcome.combined
    if not outcome.consistent and options.require_agreement == "drop":
        return None
    tie = verdict == "tie" or (not outcome.consistent and options.require_agreement == "tie")
    chosen_side = "a" if verdict == "tie" else verdict
    chosen, rejected = (item.a, item.b) if chosen_side == "a" else (item.b, item.a)
    votes = [1 if winner == chosen_side else 0 if winner == "tie" else 2 for winner in outcome.winners]
    confidence = combined["tie"] if tie else combined[chosen_side]
    record = {"prompt": item.prompt, "chosen": chosen, "rejected": rejected,
              "id": f"{item.id}/{outcome.principle}" if each else item.id}
    if item.subset is not None:
        record["subset"] = item.subset
    if tie:
        record["tie"] = True
    elif options.confidence_as == "weight":
        record["weight"] = confidence
    elif options.confidence_as == "margin":
        record["margin"] = 2 * confidence - 1
    top = max(votes.count(v) for v in set(votes))
    return record | {
        "votes": votes, "agreement": top / len(votes), "confidence": confidence, "judge": judge_id,
        "principle": outcome.principle, "template": constitution.template_id(outcome.principle),
        "verdicts": [{"order": order, "label": v.label, **v.to_dict()}
                     for order, v in zip(ORDERS, outcome.verdicts, strict=True)],
    }
