"""Seq2seq teachers and students, trained with the loop of `medistill.training.loop` (seeds,
checkpoints, resumption, dev model selection) and selected on dev ROUGE-L.

The three routes of Shleifer & Rush (2020, "Pre-trained Summarization Distillation"), each a
student `shrink`-ed from the fine-tuned teacher (`medistill.seq2seq.model`):
- `shrink`: shrink and fine-tune, on the gold pairs alone;
- `sequence`: sequence-level KD, on the gold pairs plus the transfer sources paired with the
  teacher's own (cached) outputs;
- `word`: word-level KD, cross-entropy on the same targets plus KL to the teacher's cached top-k
  next-token distribution along them.
"""

from __future__ import annotations

from collections.abc import Callable

from medistill.core.device import choose_device
from medistill.seq2seq.model import encode_pairs, frequent_target_tokens, generate_texts
from medistill.seq2seq.objective import Seq2SeqObjective
from medistill.seq2seq.scoring import corpus_rouge
from medistill.seq2seq.tasks import ROUTES, SHRINK_ROUTE


def decoding_vocabulary(tokenizer, generation: dict, train_pairs: list[dict]):
    """What an output may write besides its own source's tokens: with
    `generation.restrict_vocabulary` (a share), the tokens of at least that share of the train
    targets and the special ids (`frequent_target_tokens`); None (free decoding) without.
    Copying what the report says is what summaries and exercises need, and what a small
    encoder-decoder trained on a CPU budget does not learn on its own (docs/studies/seq2seq.md)."""
    share = generation.get("restrict_vocabulary")
    if share is None:
        return None
    if not train_pairs:
        raise ValueError(
            "generation.restrict_vocabulary: no train pairs to take the frequent target tokens from"
        )
    return frequent_target_tokens(tokenizer, [pair["target"] for pair in train_pairs], share)


def generate(
    model, tokenizer, sources: list[str], generation: dict, device: str, vocabulary=None
) -> list[str]:
    """`generate_texts` with the settings of a `generation` block (and the restriction of
    `decoding_vocabulary`, if any)."""
    return generate_texts(
        model,
        tokenizer,
        sources,
        max_source=generation["max_source"],
        max_new_tokens=generation["max_new_tokens"],
        num_beams=generation["num_beams"],
        batch_size=generation["batch_size"],
        device=choose_device(device),
        vocabulary=vocabulary,
    )


def rouge_dev_score(
    generation: dict, tokenizer, dev_pairs: list[dict], device: str, vocabulary=None
) -> Callable:
    """The dev score of an encoder-decoder: corpus ROUGE-L of its greedy outputs (greedy keeps
    each dev evaluation cheap; the test evaluation decodes as `generation` says), restricted
    to `vocabulary` as the test outputs are."""

    def dev_score(model) -> float:
        greedy = generation | {"num_beams": 1}
        sources = [pair["source"] for pair in dev_pairs]
        outputs = generate(model, tokenizer, sources, greedy, device, vocabulary)
        return corpus_rouge(outputs, [pair["target"] for pair in dev_pairs])["rougeL"]

    return dev_score


def route_examples(
    route: str,
    tokenizer,
    gold_pairs: list[dict],
    generation: dict,
    teacher_outputs: list[dict] = (),
    teacher_topk: list[dict] = (),
) -> tuple[list[dict], Seq2SeqObjective]:
    """A route's training examples and objective.

    `teacher_outputs`: transfer pairs whose targets are the teacher's outputs (sequence and word
    routes); `teacher_topk`: for the word route, the teacher's cached top-k along the targets of
    gold pairs then transfer pairs, in that order (`medistill.seq2seq.model.teacher_topk`)."""
    if route not in ROUTES:
        raise ValueError(f"unknown distillation route {route!r}; use one of {', '.join(ROUTES)}")
    pairs = list(gold_pairs) if route == SHRINK_ROUTE else [*gold_pairs, *teacher_outputs]
    examples = encode_pairs(
        tokenizer, pairs, generation["max_source"], generation["max_new_tokens"]
    )
    if route != "word":
        return examples, Seq2SeqObjective(ce_weight=1.0, kl_weight=0.0)
    if len(teacher_topk) != len(examples):
        raise ValueError(
            f"word-level KD: {len(teacher_topk)} cached teacher distributions for "
            f"{len(examples)} targets; delete the cache and rerun"
        )
    for example, cached in zip(examples, teacher_topk, strict=True):
        if len(cached["topk_ids"]) != len(example["labels"]):
            raise ValueError("word-level KD: a cached distribution does not match its target")
        example.update(cached)
    return examples, Seq2SeqObjective(ce_weight=1.0, kl_weight=1.0)


def teacher_pairs(
    model, tokenizer, sources: list[dict], generation: dict, device: str, vocabulary=None
) -> list:
    """Sequence-level KD targets: each transfer source paired with the teacher's output,
    decoded as its test outputs are (`vocabulary`)."""
    texts = [s["source"] for s in sources]
    outputs = generate(model, tokenizer, texts, generation, device, vocabulary)
    return [
        {"id": s["id"], "source": s["source"], "target": output}
        for s, output in zip(sources, outputs, strict=True)
        if output  # an empty output teaches nothing
    ]
