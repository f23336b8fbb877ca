"""Task data: documents with entity spans -> sentences of words with IOB2 tags -> model inputs.

Everything downstream (teacher fine-tuning, the logit cache, distillation, evaluation) works at
word level, so students with another tokenizer can still learn from a teacher's cached logits.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medistill.core.io import write_json, write_jsonl
from medistill.data.lexicons import LABELS, load_lexicons
from medistill.data.spans import documents_to_sentences, iob2_labels, tag_spans
from medistill.data.synthetic import generate_reports


def synthetic_sentences(count: int, seed: int = 1, max_words: int = 64) -> list[dict]:
    """`count` sentences of generated clinical reports (benchmark inputs)."""
    sentences: list[dict] = []
    docs = max(count // 8, 1)
    while len(sentences) < count:
        sentences = documents_to_sentences(generate_reports(docs, seed=seed), max_words)
        docs *= 2
    return sentences[:count]


def synthetic_task_splits(spec: dict) -> dict[str, list[dict]]:
    """Train/dev/test documents from the generator; test uses the held-out vocabulary too.

    Each split has its own seed offset and id prefix, so no document is in two splits.
    """
    kwargs = {"heldout_fraction": spec["heldout_fraction"]} if "heldout_fraction" in spec else {}
    lexicons = load_lexicons(**kwargs)
    return {
        split: generate_reports(
            spec[f"{split}_docs"],
            seed=spec["seed"] * 1000 + offset,
            vocabulary="test" if split == "test" else "train",
            id_prefix=f"task-{split}",
            lexicons=lexicons,
        )
        for offset, split in enumerate(("train", "dev", "test"))
    }


# Robustness test sets built from the test split (file `test_<name>.jsonl`, metric `f1_<name>`).
TYPO_SETS = {"typo5": 0.05, "typo15": 0.15}
ROBUSTNESS_SETS = (*TYPO_SETS, "abbrev", "unseen")


def mention_surfaces(sentences: Iterable[dict]) -> set[str]:
    """Case-folded surface forms ("insuffisance cardiaque") of the gold mentions of sentences."""
    return {surface for sentence in sentences for _, _, surface in _mentions(sentence)}


def _mentions(sentence: dict) -> list[tuple[int, int, str]]:
    """`(first word, end word, case-folded surface)` of each gold mention (IOB2 tags)."""
    words = sentence["words"]
    return [(i, end, " ".join(words[i:end]).casefold()) for i, end in tag_spans(sentence["tags"])]


def unseen_test_set(test: list[dict], train: list[dict]) -> tuple[list[dict], dict]:
    """The test sentences, each with `ignore`: the words of gold mentions whose surface form
    (case-folded) occurs as a gold mention in the train split.

    `f1_unseen` is strict entity F1 over the test split after removing, from gold and from
    predictions, every mention that overlaps an ignored word: it scores only mentions whose
    surface form was never seen as a mention in training (and false positives elsewhere).
    """
    seen = mention_surfaces(train)
    out, n_seen, n_unseen = [], 0, 0
    for sentence in test:
        ignore = [False] * len(sentence["words"])
        for start, end, surface in _mentions(sentence):
            if surface in seen:
                n_seen += 1
                ignore[start:end] = [True] * (end - start)
            else:
                n_unseen += 1
        out.append({**sentence, "ignore": ignore})
    total = n_seen + n_unseen
    return out, {"mentions_unseen": n_unseen, "share_unseen": n_unseen / total if total else 0.0}


def abbreviation_test_set(test_docs: list[dict], max_words: int, seed: int) -> list[dict]:
    """Test sentences where every long form of the built-in abbreviation lexicon became its
    short form ("hypertension artérielle" -> "HTA"), keeping only the sentences that changed;
    entity spans (and so tags) follow the short forms."""
    import random

    from medistill.data.augment import Augmenter, load_abbreviations

    augmenter = Augmenter(
        abbreviation_rate=1.0, abbreviations=load_abbreviations(), abbreviation_direction="shorten"
    )
    rng = random.Random(seed)
    clean = {tuple(s["words"]) for s in documents_to_sentences(test_docs, max_words)}
    short_docs = [augmenter(doc, rng, suffix="~abbrev") for doc in test_docs]
    changed = [
        s for s in documents_to_sentences(short_docs, max_words) if tuple(s["words"]) not in clean
    ]
    return changed or documents_to_sentences(test_docs, max_words)


def prepare_task(spec: dict, out_dir: Path, max_words: int, seed: int) -> dict:
    """Write train/dev/test sentence files, the robustness test sets and the label list.

    `spec` holds `synthetic` (generated documents, the label list `LABELS`) or `files` (a
    real corpus read by `medistill.data.loaders.load_task`; the label list is the data's sorted
    entity types, or the configured `labels`).

    Robustness sets, from the test split: `test_typo5`/`test_typo15` (5% / 15% of the words
    given one typo, tags unchanged), `test_abbrev` (sentences with abbreviations, see
    `abbreviation_test_set`) and `test_unseen` (see `unseen_test_set`). Returns counts.
    """
    import random

    from medistill.data.augment import typo_words

    out_dir = Path(out_dir)
    labels = LABELS
    if "files" in spec:
        from medistill.data.loaders import load_task, sentences_to_documents

        loaded = load_task(spec["files"], max_words)
        splits, labels, counts = loaded["sentences"], loaded["labels"], loaded["counts"]
        # the abbreviation set compares clean and shortened copies split the same way: the
        # built-in splitter (an augmented copy does not keep a document's own `sentences`)
        test_docs = loaded["documents"]["test"] if loaded["documents"] else None
        documents = {
            "test": [{k: v for k, v in d.items() if k != "sentences"} for d in test_docs]
            if test_docs
            else sentences_to_documents(splits["test"])
        }
        for split, sentences in splits.items():
            write_jsonl(sentences, out_dir / f"{split}.jsonl")
    else:
        counts, splits, documents = {}, {}, synthetic_task_splits(spec["synthetic"])
        for split, docs in documents.items():
            splits[split] = documents_to_sentences(docs, max_words)
            write_jsonl(splits[split], out_dir / f"{split}.jsonl")
            counts[split] = {"documents": len(docs), "sentences": len(splits[split])}
    for name, rate in TYPO_SETS.items():
        rng = random.Random(f"{seed}/{name}")
        noisy = [{**s, "words": typo_words(s["words"], rate, rng)} for s in splits["test"]]
        write_jsonl(noisy, out_dir / f"test_{name}.jsonl")
    abbrev = abbreviation_test_set(documents["test"], max_words, seed)
    write_jsonl(abbrev, out_dir / "test_abbrev.jsonl")
    unseen, unseen_counts = unseen_test_set(splits["test"], splits["train"])
    write_jsonl(unseen, out_dir / "test_unseen.jsonl")
    counts["robustness"] = {"abbrev_sentences": len(abbrev), **unseen_counts}
    write_json(iob2_labels(labels), out_dir / "labels.json")
    return counts


# The corpus name of baseline students: trained on the task's gold labels alone, no teacher.
BASELINE_CORPUS = "gold"
