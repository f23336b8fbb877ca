"""Task data of the seq2seq family: source/target pairs per split, and the robustness test sets
built from the test split, written as the files every later job reads.

A task is `kind` (`summary` or `exercise`, see `medistill.seq2seq.pairs`) plus one data source:

- `synthetic`: pairs derived from generated reports, each with its gold entities. Train, dev,
  test are runs of the generator with their own seeds, so growing `train_docs` never changes
  the test pairs, and no report is in two splits.
- `files`: pair files (`.jsonl` or `.csv`, read by `seq2seq.pairs.load_pairs`); without a `dev`
  file a seeded `dev_fraction` of train becomes dev.
- `huggingface`: a hub dataset or a `save_to_disk` folder (opened by
  `data.hf_datasets.open_hf_dataset`), one pair per row of its source and target columns.

Robustness sets (`test_<name>.jsonl`), each scored like the clean test set:

- `typo5`: the test sources with 5% of their words given one typo (`data.augment.Augmenter`); the
  target is unchanged: the model must see through the noise.
- `abbrev`: the test sources whose long forms of the built-in abbreviation lexicon became their
  short forms ("hypertension artérielle" -> "HTA"); only the pairs that changed.
- `unseen`: concepts never seen in training. Synthetic tasks: new pairs from reports generated
  with the held-out vocabulary (every kept source holds at least one held-out lexicon term).
  Pair files carry no entities, so there a test pair is unseen when its target holds a word of
  4+ letters (case and accents ignored) that no train target holds: a crude proxy for a new
  concept that needs no lexicon match, which real wording would mostly miss.

Source entity spans of the noisy sets move with their text and their `text` is the new surface,
so `source[start:end] == text` holds in every file.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from medistill.core.errors import ConfigError, TaskDataError
from medistill.core.io import write_json, write_jsonl
from medistill.core.schema import with_schema_defaults
from medistill.data.augment import Augmenter, load_abbreviations
from medistill.data.french import strip_accents
from medistill.data.hf_datasets import HF_SPLITS, open_hf_dataset
from medistill.data.lexicons import load_lexicons
from medistill.data.loaders import carve_dev
from medistill.data.tasks import TYPO_SETS
from medistill.seq2seq.pairs import TASKS, load_pairs, synthetic_pairs

SPLITS = ("train", "dev", "test")
SEQ2SEQ_TYPO_SETS = {"typo5": TYPO_SETS["typo5"]}
# Robustness test sets of the seq2seq family: one file `test_<name>.jsonl` each.
SEQ2SEQ_ROBUSTNESS_SETS = (*SEQ2SEQ_TYPO_SETS, "abbrev", "unseen")
# How a student learns a task's pairs: `shrink` from the gold pairs alone (corpus `gold`),
# `sequence` from the teacher's outputs too, `word` from its top-k along them as well.
SHRINK_ROUTE = "shrink"
ROUTES = (SHRINK_ROUTE, "sequence", "word")
DATA_SOURCES = ("synthetic", "files", "huggingface")
# Generator seed of split k is `seed * 1000 + k`: the splits (and the held-out pairs) are
# independent runs, so each stays the same whatever the size of the others.
_SEED_OFFSETS = {"train": 0, "dev": 1, "test": 2, "unseen": 3}
# A report of held-out vocabulary without a held-out term is rare; past this many doublings of
# the candidates the unseen set keeps what it found rather than loop on.
_MAX_UNSEEN_ROUNDS = 6
# Letters only: numbers (doses, dates) and short function words say nothing about concepts.
_CONTENT_WORD = re.compile(r"[^\W\d_]{4,}")


def _key(text: str) -> str:
    """A comparison key that ignores case and accents, as `lexicons` does for its terms."""
    return strip_accents(text.casefold())


# ---------------------------------------------------------------------------------------------
# Splits


def _synthetic_splits(kind: str, spec: dict) -> tuple[dict[str, list[dict]], list[dict], dict]:
    """Train/dev/test pairs, the held-out pairs of `test_unseen`, and the latter's counts."""
    lexicons = load_lexicons()
    splits = {}
    for split in SPLITS:
        pairs = synthetic_pairs(
            kind,
            spec[f"{split}_docs"],
            spec["seed"] * 1000 + _SEED_OFFSETS[split],
            lexicons=lexicons,
        )
        # The generator names reports by index only: the split in the id keeps ids unique.
        splits[split] = [_renamed(pair, f"synth-{split}-{i:06d}") for i, pair in enumerate(pairs)]
    # Independent seeds make a shared report all but impossible; dropping any keeps the
    # scores honest even then.
    train_sources = {pair["source"] for pair in splits["train"]}
    for split in ("dev", "test"):
        splits[split] = [pair for pair in splits[split] if pair["source"] not in train_sources]
    unseen, counts = _heldout_pairs(kind, spec["test_docs"], spec["seed"], lexicons)
    return splits, unseen, counts


def _renamed(pair: dict, pair_id: str) -> dict:
    return {**pair, "id": pair_id}


def _heldout_pairs(kind: str, count: int, seed: int, lexicons) -> tuple[list[dict], dict]:
    """`count` pairs whose source holds at least one held-out lexicon term, from reports of the
    generator's test vocabulary (each mention held out with probability 0.5)."""
    heldout = {_key(term) for terms in lexicons.heldout.values() for term in terms}

    def heldout_mentions(pair: dict) -> int:
        return sum(_key(entity["text"]) in heldout for entity in pair["source_entities"])

    generator_seed = seed * 1000 + _SEED_OFFSETS["unseen"]
    candidates = count
    for _ in range(_MAX_UNSEEN_ROUNDS):
        # A larger run extends a smaller one (pair i depends only on seed and i): doubling
        # only adds candidates, the ones kept so far stay.
        pairs = synthetic_pairs(kind, candidates, generator_seed, "test", lexicons=lexicons)
        kept = [pair for pair in pairs if heldout_mentions(pair)][:count]
        if len(kept) == count:
            break
        candidates *= 2
    kept = [_renamed(pair, f"synth-unseen-{i:06d}") for i, pair in enumerate(kept)]
    mentions = sum(len(pair["source_entities"]) for pair in kept)
    novel = sum(heldout_mentions(pair) for pair in kept)
    return kept, {
        "heldout_mentions": novel,
        "share_heldout_mentions": novel / mentions if mentions else 0.0,
    }


def _check_not_empty(splits: dict[str, list[dict]], where: str) -> None:
    for split in SPLITS:
        if not splits.get(split):
            raise TaskDataError(
                f"{where}: the {split} split holds no pair; check the data (dev is carved from "
                "train when not given: give train more pairs or a larger dev_fraction)"
            )


def _file_splits(kind: str, spec: dict) -> dict[str, list[dict]]:
    spec = with_schema_defaults(spec, "pair_files")
    fields = {
        "source_field": spec["source_field"],
        "target_field": spec["target_field"],
    }
    splits = {
        split: load_pairs(Path(spec[split]).expanduser(), kind, **fields)
        for split in SPLITS
        if spec.get(split)
    }
    if "dev" not in splits:
        splits["train"], splits["dev"] = carve_dev(
            splits["train"], spec["dev_fraction"], spec["seed"]
        )
    _check_not_empty(splits, f"pair files {spec['train']}")
    return splits


def check_pair_files(spec: dict) -> None:
    """Read every file of a `files` task spec (the task's spec, with `kind` and `files`, or the
    `files` mapping itself) through `load_pairs`, so a bad line stops the workflow before any
    job starts; raises `TaskDataError` naming the file and line."""
    files = spec["files"] if "files" in spec else spec
    kind = spec.get("kind", TASKS[0])  # the kind does not change how a file is read
    _file_splits(kind, files)


def _hf_text(value, where: str, role: str, column: str) -> str | None:
    """A row's text, or None for an empty cell (real datasets have some: the row is skipped)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise TaskDataError(
            f"{where}: the {role} column {column!r} holds {type(value).__name__}, not text; "
            f"name a text column with `{role}_field`"
        )
    return value


def _hf_pairs(data, kind: str, where: str, prefix: str, fields: dict) -> tuple[list[dict], int]:
    """The pairs of one dataset split, and how many rows were skipped for an empty cell."""
    for role, column in fields.items():
        if column not in data.column_names:
            raise TaskDataError(
                f"{where}: no {role} column {column!r} (columns: "
                f"{', '.join(data.column_names)}); set `{role}_field` to one of them"
            )
    ids = data["id"] if "id" in data.column_names else [None] * len(data)
    pairs, skipped = [], 0
    rows = zip(ids, data[fields["source"]], data[fields["target"]], strict=True)
    for row, (row_id, raw_source, raw_target) in enumerate(rows):
        at = f"{where} row {row}"
        source = _hf_text(raw_source, at, "source", fields["source"])
        target = _hf_text(raw_target, at, "target", fields["target"])
        if source is None or target is None:
            skipped += 1
            continue
        pairs.append(
            {
                "id": str(row_id) if row_id not in (None, "") else f"{prefix}{row}",
                "source": source,
                "target": target,
                "task": kind,
                "source_entities": None,
                "target_entities": None,
            }
        )
    return pairs, skipped


def _hf_splits(kind: str, spec: dict, allow_network: bool) -> tuple[dict[str, list[dict]], dict]:
    spec = with_schema_defaults(spec, "pair_hub")
    """Pairs per split from a dataset's splits (`splits` maps train/dev/test to its names,
    default `HF_SPLITS`, dev carved from train where the dataset has none), and counts."""
    data, label = open_hf_dataset(spec, allow_network)
    mapping = spec.get("splits") or {}
    if "dev" not in mapping and "validation" not in data and "dev" in data:
        mapping = {**mapping, "dev": "dev"}
    mapping = {**HF_SPLITS, **mapping}
    fields = {
        "source": spec["source_field"],
        "target": spec["target_field"],
    }
    name = label.split("/")[-1].split()[0]  # the dataset's name alone: "ORG/NAME (config)"
    splits, skipped = {}, {}
    for split, split_name in mapping.items():
        if split_name not in data:
            if split == "dev" and "dev" not in (spec.get("splits") or {}):
                continue  # carved from train below
            raise TaskDataError(
                f"huggingface dataset {label} has no split {split_name!r} (splits: "
                f"{', '.join(data)}); set `splits.{split}` to one of them"
            )
        where = f"huggingface dataset {label} split {split_name}"
        splits[split], skipped[split] = _hf_pairs(
            data[split_name], kind, where, f"{name}-{split_name}-", fields
        )
    if "dev" not in splits:
        splits["train"], splits["dev"] = carve_dev(
            splits["train"], spec["dev_fraction"], spec["seed"]
        )
    _check_not_empty(splits, f"huggingface dataset {label}")
    return splits, {"dataset": label, "skipped_empty_rows": skipped}


# ---------------------------------------------------------------------------------------------
# Robustness sets


def _noisy_pair(pair: dict, augmenter: Augmenter, rng: random.Random) -> dict:
    """The pair with its source rewritten by `augmenter`; source entities (if any) move with
    their text and take its new surface. The id is kept, so clean and noisy outputs pair up."""
    doc = {"id": pair["id"], "text": pair["source"]}
    if pair["source_entities"] is not None:
        doc["entities"] = pair["source_entities"]
    noisy = augmenter(doc, rng, suffix="")
    entities = None
    if pair["source_entities"] is not None:
        entities = [
            {**entity, "text": noisy["text"][entity["start"] : entity["end"]]}
            for entity in noisy["entities"]
        ]
    return {**pair, "source": noisy["text"], "source_entities": entities}


def typo_test_set(test: list[dict], rate: float, rng: random.Random) -> tuple[list[dict], dict]:
    """The test pairs with about `rate` of their source words given one typo; and counts."""
    augmenter = Augmenter(typo_rate=rate)
    noisy = [_noisy_pair(pair, augmenter, rng) for pair in test]
    changed = sum(a["source"] != b["source"] for a, b in zip(test, noisy, strict=True))
    return noisy, {
        "pairs": len(noisy),
        "changed": changed,
        "word_typo_rate": augmenter.measured_rates()["typo"],
    }


def abbreviation_test_set(test: list[dict], rng: random.Random) -> tuple[list[dict], dict]:
    """The test pairs whose source had a long form of the built-in abbreviation lexicon, every
    one now its short form; all test pairs when none had one (the file is never empty)."""
    augmenter = Augmenter(
        abbreviation_rate=1.0, abbreviations=load_abbreviations(), abbreviation_direction="shorten"
    )
    shortened = [_noisy_pair(pair, augmenter, rng) for pair in test]
    changed = [
        short
        for clean, short in zip(test, shortened, strict=True)
        if short["source"] != clean["source"]
    ]
    return changed or list(test), {
        "pairs": len(changed or test),
        "changed": len(changed),
        "short_forms": augmenter.counts["abbreviation_swapped"],
        "all_test_pairs": not changed,
    }


def unseen_target_words(test: list[dict], train: list[dict]) -> list[set[str]]:
    """For each test pair, the words of its target (4+ letters, case and accents ignored)
    that no train target holds."""
    seen = {_key(word) for pair in train for word in _CONTENT_WORD.findall(pair["target"])}
    return [{_key(word) for word in _CONTENT_WORD.findall(pair["target"])} - seen for pair in test]


def _unseen_from_files(test: list[dict], train: list[dict]) -> tuple[list[dict], dict]:
    """The test pairs whose target holds a word no train target holds (may be empty)."""
    new_words = unseen_target_words(test, train)
    kept = [pair for pair, words in zip(test, new_words, strict=True) if words]
    return kept, {"unseen_target_words": len(set().union(*new_words))}


# ---------------------------------------------------------------------------------------------
# The task folder


def prepare_seq2seq_task(spec: dict, out_dir: Path, seed: int, allow_network: bool = False) -> dict:
    """Write a seq2seq task's pairs into `out_dir`: `train.jsonl`, `dev.jsonl`, `test.jsonl`,
    the robustness sets `test_typo5.jsonl`, `test_abbrev.jsonl`, `test_unseen.jsonl` (see the
    module docstring) and `stats.json` (pairs per split and per set); return the stats.

    `spec` holds `kind` and one of `synthetic`, `files`, `huggingface`; `seed` draws the noise
    of the robustness sets; `allow_network` lets a hub dataset download. Deterministic.
    """
    kind = spec.get("kind")
    if kind not in TASKS:
        raise ConfigError(f"seq2seq task: kind must be one of {TASKS}, got {kind!r}")
    sources = [source for source in DATA_SOURCES if source in spec]
    if len(sources) != 1:
        raise ConfigError(
            f"seq2seq task: give exactly one of {', '.join(DATA_SOURCES)} (got "
            f"{', '.join(sources) or 'none'})"
        )
    source = sources[0]
    stats: dict = {"kind": kind, "data": source}
    unseen = None
    if source == "synthetic":
        splits, unseen, unseen_counts = _synthetic_splits(kind, spec["synthetic"])
    elif source == "files":
        splits = _file_splits(kind, spec["files"])
    else:
        splits, hf_counts = _hf_splits(kind, spec["huggingface"], allow_network)
        stats.update(hf_counts)
    if unseen is None:
        unseen, unseen_counts = _unseen_from_files(splits["test"], splits["train"])

    out_dir = Path(out_dir)
    for split, pairs in splits.items():
        write_jsonl(pairs, out_dir / f"{split}.jsonl")
        stats[split] = {"pairs": len(pairs)}
    # Pair files may repeat a report across splits; the count says how far test scores flatter.
    train_sources = {pair["source"] for pair in splits["train"]}
    stats["test"]["sources_also_in_train"] = sum(
        pair["source"] in train_sources for pair in splits["test"]
    )

    robustness = {}
    for name, rate in SEQ2SEQ_TYPO_SETS.items():
        noisy, robustness[name] = typo_test_set(
            splits["test"], rate, random.Random(f"{seed}/{name}")
        )
        write_jsonl(noisy, out_dir / f"test_{name}.jsonl")
    abbrev, robustness["abbrev"] = abbreviation_test_set(
        splits["test"], random.Random(f"{seed}/abbrev")
    )
    write_jsonl(abbrev, out_dir / "test_abbrev.jsonl")
    write_jsonl(unseen, out_dir / "test_unseen.jsonl")
    robustness["unseen"] = {"pairs": len(unseen), **unseen_counts}
    stats["robustness"] = robustness
    write_json(stats, out_dir / "stats.json")
    return stats
