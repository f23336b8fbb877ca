"""Entity-level NER scores: a model's predicted IOB2 tags and seqeval's strict IOB2 F1 (the
protocol of CamemBERT-bio and DrBenchmark), used for dev selection and for evaluation."""

from __future__ import annotations

import numpy as np
import torch
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2, Entities

from medistill.core.encoding import collate, encode_sentences, length_batches
from medistill.core.significance import micro_f1
from medistill.data.spans import tag_spans


@torch.no_grad()
def predict_tags(model, tokenizer, sentences, max_length, batch_size, device) -> list[list[str]]:
    """The label of each word's first sub-token, argmax over the model's labels."""
    model.eval().to(device)
    features = encode_sentences(tokenizer, sentences, max_length)
    predictions: list[list[str]] = [[] for _ in features]
    for indices in length_batches(features, batch_size):
        batch = collate([features[i] for i in indices], tokenizer.pad_token_id)
        logits = (
            model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            )
            .logits.argmax(-1)
            .cpu()
        )
        for row, index in enumerate(indices):
            ids = logits[row][batch["word_index"][row] >= 0].tolist()
            predictions[index] = [model.config.id2label[i] for i in ids]
    return predictions


def ner_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Micro and macro entity F1 and per-type precision/recall/F1, strict IOB2 matching."""
    report = classification_report(
        gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    per_type = {
        name: {k: float(v) for k, v in row.items() if k != "support"}
        | {"support": int(row["support"])}
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, predicted, mode="strict", scheme=IOB2, zero_division=0)),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "precision": float(report["micro avg"]["precision"]),
        "recall": float(report["micro avg"]["recall"]),
        "per_type": per_type,
    }


def mask_ignored(sentences: list[dict], predicted: list[list[str]]):
    """Gold and predicted tags without the mentions that touch a sentence's `ignore` words.

    Gold: ignored words become `O` (they are whole gold mentions). Predictions: every predicted
    mention (a B-X or stray I-X and the I-X after it) with an ignored word becomes `O`, so a
    prediction of a masked gold mention counts neither as a hit nor as a false positive.
    """
    gold_out, predicted_out = [], []
    for sentence, tags in zip(sentences, predicted, strict=True):
        ignore = sentence.get("ignore") or [False] * len(tags)
        gold_out.append(
            ["O" if skip else t for t, skip in zip(sentence["tags"], ignore, strict=True)]
        )
        tags = list(tags)
        for i, end in tag_spans(tags):
            if any(ignore[i:end]):
                tags[i:end] = ["O"] * (end - i)
        predicted_out.append(tags)
    return gold_out, predicted_out


def sentence_counts(gold: list[list[str]], predicted: list[list[str]]) -> np.ndarray:
    """Per sentence: [exact matches, predicted mentions, gold mentions], strict IOB2 as seqeval
    extracts them. Entities never cross sentences, so the column sums give seqeval's micro F1,
    and a resample of sentences gives the F1 of that resample (`paired_bootstrap`)."""
    gold_entities = Entities(gold, IOB2, suffix=False).entities
    predicted_entities = Entities(predicted, IOB2, suffix=False).entities
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    for row, (truth, guess) in enumerate(zip(gold_entities, predicted_entities, strict=True)):
        truth = {entity.to_tuple()[1:] for entity in truth}
        guess = {entity.to_tuple()[1:] for entity in guess}
        counts[row] = (len(truth & guess), len(guess), len(truth))
    return counts


def with_unaligned_lines(
    scores: dict, counts: np.ndarray, unaligned: list[int]
) -> tuple[dict, np.ndarray]:
    """A generative tagger's scores and sentence counts with each output line that names no
    mention of its sentence counted as one more predicted mention matching none (a false
    positive, as an encoder's wrong mention is): micro precision and F1 fall, recall does not.
    seqeval's figures over the aligned lines alone stay as `*_aligned_only`; per-type scores
    are seqeval's (an unknown type belongs to no type)."""
    counts = counts.copy()
    counts[:, 1] += np.asarray(unaligned, dtype=np.int64)
    matches, predicted, _ = counts.sum(axis=0)
    return scores | {
        "f1": float(micro_f1(counts.sum(axis=0))),
        "precision": float(matches / predicted) if predicted else 0.0,
        "f1_aligned_only": scores["f1"],
        "precision_aligned_only": scores["precision"],
        "unaligned_lines": int(sum(unaligned)),
    }, counts
