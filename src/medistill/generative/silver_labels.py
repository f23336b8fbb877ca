"""A generative teacher's signal: a generative tagger's silver tags over a transfer corpus (or
the task's train split), cached in the layout of an encoder teacher's logits (`medistill.ner.cache`)
so that students are distilled from them unchanged.

Each word's cached row is the log of the one-hot distribution of the tagger's tag over the
task's labels (0 for the tag, `SILVER_FLOOR` elsewhere): at distillation temperatures up to 4
its softmax gives every other label under 1e-6, so the soft-target loss is the cross-entropy
on the silver tags (the route of Gu et al. 2023 and UniversalNER). The manifest
carries the provenance: the tagger, its kind and source (or base teacher), the checksum of its
weights, the generation settings, and the parse counts over the whole corpus (what the tagger
wrote that could not be turned into tags is counted, as in its evaluation). Shards are written
as the task cache's are: a killed labelling job resumes at the first missing shard.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from medistill.core.io import read_json
from medistill.data.spans import read_sentences
from medistill.generative.tagging import load_tagger
from medistill.generative.text import ParseCounts
from medistill.ner.cache import (
    DTYPE,
    finish_cache,
    load_shard,
    sentences_fingerprint,
    shard_key,
    task_manifest,
    write_shards,
)

SILVER_FLOOR = -60.0
COUNTED = tuple(f.name for f in fields(ParseCounts) if f.name != "examples")


def one_hot_logits(tags: list[list[str]], labels: list[str]) -> np.ndarray:
    """[words, labels] log one-hot rows of the sentences' tags, concatenated."""
    index = {label: i for i, label in enumerate(labels)}
    flat = [index[tag] for sentence in tags for tag in sentence]
    logits = np.full((len(flat), len(labels)), SILVER_FLOOR, dtype=np.float32)
    logits[np.arange(len(flat)), flat] = 0.0
    return logits


def label_corpus(
    config: dict,
    *,
    teacher: str,
    model_dir: Path | None,
    task_dir: Path,
    corpus_path: Path,
    manifest_path: Path,
    allow_network: bool = False,
) -> dict:
    """Tag every sentence of the corpus with the generative teacher's tagger (`labels_from`)
    and cache the tags as one-hot word logits over the task's labels; return the manifest."""
    tagger_name = config["teachers"][teacher]["labels_from"]
    spec = config["generative"]["taggers"][tagger_name]
    generation = config["generative"]["generation"]
    tagger = load_tagger(config, tagger_name, model_dir, task_dir, allow_network)
    labels = read_json(Path(task_dir) / "labels.json")
    sentences = read_sentences(corpus_path, config["max_words_per_sentence"])
    identity = {
        "teacher": teacher,
        "teacher_sha": tagger.weights_sha,
        # word-level tags do not depend on the student's tokenizer
        "tokenizer_hash": None,
        "corpus_hash": sentences_fingerprint(sentences),
    }

    def compute(start: int, stop: int) -> dict[str, np.ndarray]:
        tags, per_sentence = tagger.tags(sentences[start:stop])
        counts = ParseCounts.summed(per_sentence)
        return {
            "logits": one_hot_logits(tags, labels).astype(DTYPE),
            "parse_counts": np.array([getattr(counts, name) for name in COUNTED], np.int64),
        }

    shard_size = config["cache"]["shard_size"]
    key = shard_key(
        kind="silver",
        shard_size=shard_size,
        labels=labels,
        tagger=spec,
        generation=generation,
        seed=config["seed"],
        **identity,
    )
    out_dir = Path(manifest_path).parent
    shards, total_bytes = write_shards(
        out_dir, key, len(sentences), shard_size, compute, f"silver tags of {tagger_name}"
    )
    # summed from the shards, so a resumed job reports the whole corpus
    parse = ParseCounts()
    for shard in shards:
        counts = load_shard(Path(manifest_path), shard)["parse_counts"]
        parse.add(ParseCounts(**dict(zip(COUNTED, map(int, counts), strict=True))))
    manifest = task_manifest(identity, labels, sentences, None) | {
        "silver": {
            "labels_from": tagger_name,
            "tagger": spec,
            "generation": generation,
            "parse": parse.as_dict(),
        },
    }
    return finish_cache(out_dir, manifest, shards, total_bytes)
