"""Constitutional AI's critique-and-revise: a judge criticizes a response against a principle, then rewrites it,
and the (revision, original) pair says the revision is preferred.

    drafts = load_drafts("responses.jsonl")            # {"prompt", "response"} or {"prompt", "responses": [...]}
    result = revise(drafts, judge, constitution, cache, JudgeOptions())
    result.pairs                                       # {"prompt", "chosen": revision, "rejected": original, ...}

Critiques and revisions are cached like verdicts (kinds "critique" and "revision"; a revision's key holds its
critique). A failed generation is a failure record; a revision that is empty or the same as the original makes no
pair (counted as `unchanged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rewardkit.data.importers import parse_prompt, parse_response, record_id_or_default, require_field
from rewardkit.data.records import Message, Text, prompt_key
from rewardkit.data.sources import read_records
from rewardkit.errors import DataError
from rewardkit.judge.cache import JudgeCache, request_key
from rewardkit.judge.items import JudgeItem
from rewardkit.judge.judges import Failure, Judge
from rewardkit.judge.principles import Constitution, plain_text
from rewardkit.judge.run import JudgeOptions, JudgeResult, principles_for


@dataclass(frozen=True)
class Draft:
    id: str
    prompt: Text
    response: Text
    subset: str | None = None


def load_drafts(source: str | Path) -> list[Draft]:
    """One draft per record's `response`, or per response of its `responses` (ids "{id}:{i}")."""
    drafts = []
    for index, (location, record) in enumerate(read_records(source)):
        try:
            prompt = parse_prompt(require_field(record, "prompt"), "prompt")
            draft_id = record_id_or_default(record, f"{Path(source).stem}-{index}")
            if "responses" in record and isinstance(record["responses"], list):
                drafts += [Draft(f"{draft_id}:{i}", prompt, parse_response(r, f"responses[{i}]"), record.get("subset"))
                           for i, r in enumerate(record["responses"])]
            else:
                response = parse_response(require_field(record, "response"), "response")
                drafts.append(Draft(draft_id, prompt, response, record.get("subset")))
        except DataError as err:
            raise DataError(f"{location}: {err}") from None
    return drafts


@dataclass(frozen=True)
class Step:
    """One generation: `kind` "critique" or "revision" of `draft` under `principle`."""

    draft: Draft
    principle: str
    kind: str
    key: str
    chat: list[Message]


def step(draft: Draft, principle: str, kind: str, judge: Judge, constitution: Constitution,
         critique: str | None = None) -> Step:
    template = constitution.critique_template if kind == "critique" else constitution.revision_template
    key = request_key(judge=judge.id, kind=kind, template=template, principle=[principle, constitution.principle(
        principle).criterion], prompt=prompt_key(draft.prompt), responses=[prompt_key(draft.response)],
        critique=critique)
    chat = (constitution.critique(principle, draft.prompt, draft.response) if critique is None
            else constitution.revision(principle, draft.prompt, draft.response, critique))
    return Step(draft, principle, kind, key, chat)


def generate_pending(steps: Sequence[Step], judge: Judge, cache: JudgeCache, *, retry_failed: bool,
                     max_new_tokens: int) -> None:
    todo = {s.key: s for s in steps
            if cache.get(s.key) is None or (retry_failed and "error" in cache.get(s.key))}
    todo_steps = list(todo.values())
    for start in range(0, len(todo_steps), judge.batch_size):
        batch = todo_steps[start:start + judge.batch_size]
        texts = judge.generate([s.chat for s in batch], max_new_tokens=max_new_tokens)
        cache.put_many([generation_entry(s, text) for s, text in zip(batch, texts, strict=True)])


def generation_entry(s: Step, result: str | Failure) -> dict:
    base = {"key": s.key, "kind": s.kind, "item": s.draft.id, "principle": s.principle}
    if isinstance(result, Failure):
        return base | {"error": result.error, "attempts": result.attempts}
    return base | {"text": result}


def revise(drafts: Sequence[Draft], judge: Judge, constitution: Constitution, cache: JudgeCache,
           options: JudgeOptions, *, max_new_tokens: int = 256) -> JudgeResult:
    """Critique, then revise, every draft under its principle(s) (`options.principles`, `principle_mode`)."""
    for name in options.principles or ():
        constitution.principle(name)
    jobs = [(d, p) for d in drafts for p in principles_for(JudgeItem(d.id, d.prompt, d.response, d.response),
                                                             constitution, options)]
    critiques = [step(d, p, "critique", judge, constitution) for d, p in jobs]
    generate_pending(critiques, judge, cache, retry_failed=options.retry_failed, max_new_tokens=max_new_tokens)
    revisions = [step(c.draft, c.principle, "revision", judge, constitution, cache.get(c.key)["text"])
                 for c in critiques if "text" in cache.get(c.key)]
    generate_pending(revisions, judge, cache, retry_failed=options.retry_failed, max_new_tokens=max_new_tokens)
    return assemble(critiques, revisions, cache, judge.id, each=options.principle_mode == "each")


def assemble(critiques: Sequence[Step], revisions: Sequence[Step], cache: JudgeCache, judge_id: str,
             *, each: bool) -> JudgeResult:
    failures = [failure(s, cache.get(s.key)) for s in [*critiques, *revisions] if "error" in cache.get(s.key)]
    pairs, unchanged = [], 0
    critique_of = {(c.draft.id, c.principle): cache.get(c.key)["text"]
                   for c in critiques if "text" in cache.get(c.key)}
    for s in revisions:
        if "text" not in cache.get(s.key):
            continue
        revision = cache.get(s.key)["text"]
        if not revision.strip() or revision.strip() == plain_text(s.draft.response).strip():
            unchanged += 1
            continue
        record = {"prompt": s.draft.prompt, "chosen": revision, "rejected": plain_text(s.draft.response),
                  "id": f"{s.draft.id}/{s.principle}" if each else s.draft.id}
        if s.draft.subset is not None:
            record["subset"] = s.draft.subset
        pairs.append(record | {"judge": judge_id, "principle": s.principle,
                               "critique": critique_of[(s.draft.id, s.principle)], "origin": "revision"})
    summary = {"judge": judge_id, "drafts": len({c.draft.id for c in critiques}), "critiques": len(critiques),
               "revisions": len(revisions), "pairs": len(pairs), "unchanged": unchanged, "failed": len(failures),
               "failures": failures}
    return JudgeResult(pairs, summary)


def failure(s: Step, entry: dict) -> dict:
    return {"id": s.draft.id, "principle": s.principle, "error": f"{s.kind}: {entry['error']}"}
