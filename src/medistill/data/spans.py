"""Entity spans and IOB2 tags: documents with character spans -> sentences of words tagged in
IOB2, and tags back to word spans.

Everything downstream (teacher fine-tuning, the logit cache, distillation, evaluation) works at
word level, so students with another tokenizer can still learn from a teacher's cached logits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from medistill.core.io import read_jsonl
from medistill.data.lexicons import LABELS
from medistill.data.sentences import split_sentences

WORD = re.compile(r"\w+|[^\w\s]")


def iob2_labels(entity_types: Iterable[str] = LABELS) -> list[str]:
    """`O` then B-/I- for each type: a fixed order, so label ids never depend on the data."""
    return ["O"] + [f"{prefix}-{t}" for t in entity_types for prefix in ("B", "I")]


def document_sentences(doc: dict, max_words: int) -> list[dict]:
    """Split a document into sentences of words (each naming its document: `doc`, the unit
    the evaluation's bootstrap resamples), tagged in IOB2 when it has `entities`.

    Sentences longer than `max_words` are cut into chunks so that no word is ever truncated
    away by a model's maximum length. A document's own `sentences` (`(start, end)` character
    spans, as in E3C's XMI) replace the built-in splitter.
    """
    has_gold = "entities" in doc
    sentences = []
    for start, end in doc.get("sentences") or split_sentences(doc["text"]):
        spans = [
            (m.start() + start, m.end() + start) for m in WORD.finditer(doc["text"][start:end])
        ]
        tags = _tags(spans, doc.get("entities", []))
        for chunk in range(0, len(spans), max_words):
            words = [doc["text"][a:b] for a, b in spans[chunk : chunk + max_words]]
            sentence = {"id": f"{doc['id']}-{len(sentences)}", "doc": doc["id"], "words": words}
            if has_gold:
                sentence["tags"] = to_iob2(tags[chunk : chunk + max_words])
            sentences.append(sentence)
    return sentences


def _tags(word_spans: list[tuple[int, int]], entities: list[dict]) -> list[str]:
    tags = ["O"] * len(word_spans)
    for entity in entities:
        inside = [
            i for i, (a, b) in enumerate(word_spans) if a < entity["end"] and b > entity["start"]
        ]
        for rank, i in enumerate(inside):
            tags[i] = f"{'B' if rank == 0 else 'I'}-{entity['label']}"
    return tags


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (or loose IOB2, or a chunk cut inside an entity) -> IOB2: an I-X that does not
    continue an X run becomes B-X."""
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != tag[2:]):
            tag = f"B-{tag[2:]}"
        out.append(tag)
    return out


def documents_to_sentences(docs: Iterable[dict], max_words: int) -> list[dict]:
    return [s for doc in docs for s in document_sentences(doc, max_words)]


def tag_spans(tags: list[str]) -> list[tuple[int, int]]:
    """`(first word, end word)` of each tagged mention: a B-X, or a stray I-X, and its I-X run."""
    spans, i = [], 0
    while i < len(tags):
        if tags[i] == "O":
            i += 1
            continue
        end = i + 1
        while end < len(tags) and tags[end] == f"I-{tags[i][2:]}":
            end += 1
        spans.append((i, end))
        i = end
    return spans


def read_sentences(path, max_words: int) -> list[dict]:
    """The sentences of a JSON lines file: a corpus's documents (`text`, split here) or a task
    split, already sentences (`words`), so a teacher's logits can be cached over either."""
    records = read_jsonl(path)
    if records and "words" in records[0]:
        return records
    return documents_to_sentences(records, max_words)
