"""Task loaders: real French biomedical NER corpora -> the task format. This module picks the
format's reader, applies the span policy, carves dev and cuts long sentences.

A task (`tasks.NAME.files` in the config) reads one of these formats, each read by its module:

- `brat` (`medistill.data.brat`): BRAT standoff (`.txt` + `.ann`). Either the QUAERO layout
  (`PATH/{train,dev,test}/{EMEA,MEDLINE}/*.ann`, the entity type as given; `subcorpora` picks
  EMEA, MEDLINE or both) or a flat folder without a split, like Mantra (the `T` type is a
  UMLS CUI, the semantic group is the last field of the `#` AnnotatorNotes line), split by
  document with a seed (`splits` gives fractions). Editor backups (`*.ann~`) are ignored.
- `iob2` / `iob1` (`medistill.data.conll`): CoNLL files, `token TAG` per line, a blank line between
  sentences (`splits` names the file of each split); IOB1 is converted to IOB2. They name no
  document: `documents` (a folder of the same corpus's E3C XMI files) gives each sentence the
  document that holds it, so dev is carved by document and the bootstrap resamples documents.
- `e3c-xmi` (`medistill.data.e3c_xmi`): E3C UIMA XMI files (`custom:CLINENTITY`), read as XML; the
  official split of `train_test_split.txt`; sentences are the dkpro `Sentence` elements.
- `huggingface` (`medistill.data.hf_datasets`): a Hugging Face dataset of words and tags
  (`tokens_column`, `tags_column`; ClassLabel ids become their names; IOB1 is converted to
  IOB2), by hub `name` (+ `config`, `revision`; downloaded only where the network is allowed)
  or a local `path` (a `save_to_disk` folder or a folder of data files); `splits` maps
  train/dev/test to the dataset's split names (default train, validation, test).

Sentences longer than `max_words` are cut into chunks, whatever the format (IOB2 repaired at
each cut), after dev is carved, so the chunks of one sentence stay in one split.

BRAT and XMI entities go through an explicit policy for spans a flat IOB2 tagger cannot hold:
discontinuous spans are replaced by their covering span (`cover`) or dropped (`drop`); nested
or overlapping spans keep the outermost one (`outermost`), or resolve nesting within each
type first and then across types (`per_type`), or within each type first and then join the
types of the spans over each word into one label (`concatenate`, DrBenchmark's `ANAT_DISO`; see
`apply_policy`). What the policy changed is counted.

A split with no sentence, offsets past the end of a text, a span text that differs from the
`.ann` text field or a label outside the configured `labels` raise `TaskDataError`, naming the
file, the line and the fix.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.core.schema import with_schema_defaults
from medistill.data.brat import brat_documents
from medistill.data.conll import read_conll
from medistill.data.e3c_xmi import e3c_train_ids, read_e3c_xmi, sentence_documents
from medistill.data.hf_datasets import hf_splits, network_allowed
from medistill.data.spans import document_sentences, tag_spans, to_iob2

FORMATS = ("brat", "iob2", "iob1", "e3c-xmi", "huggingface")
NESTING = ("outermost", "per_type", "concatenate")
DISCONTINUOUS = ("cover", "drop")
SPLITS = ("train", "dev", "test")
DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
JOIN = "_"  # concatenate: the types over a word, sorted and joined (ANAT_DISO)
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Policy for discontinuous and nested spans


def apply_policy(
    entities: list[dict], nesting: str = "outermost", discontinuous: str = "cover"
) -> tuple[list[dict], Counter]:
    """Flat entities for IOB2 tagging, and counts of what changed.

    `discontinuous`: `cover` keeps a discontinuous span's covering span, `drop` removes it.
    `nesting`: `outermost` keeps, of spans that share characters, the longest first-starting
    one (spans inside it: `nested_removed`, spans crossing it: `crossing_removed`);
    `per_type` does the same within each type first, then across types keeps the outermost
    too (a flat tagger holds one label per word), counting the cross-type removals apart
    (`nested_removed_other_type`, `crossing_removed_other_type`); `concatenate` does the same
    within each type, then cuts the text at every span boundary and gives each piece covered by
    spans of several types the sorted types joined by `_` (DrBenchmark's QUAERO convention:
    "cancer du poumon" DISO over "poumon" ANAT -> cancer/B-DISO du/I-DISO poumon/B-ANAT_DISO),
    counting the spans that met another type (`concatenated`) and the joined pieces
    (`joined_spans`); no mention is lost, but a label set appears as a label of its own.
    Exact duplicates (same span, same label) are removed.
    """
    if nesting not in NESTING:
        raise TaskDataError(f"nesting {nesting!r} is unknown; use one of {', '.join(NESTING)}")
    if discontinuous not in DISCONTINUOUS:
        raise TaskDataError(
            f"discontinuous {discontinuous!r} is unknown; use one of {', '.join(DISCONTINUOUS)}"
        )
    counts = Counter()
    flat = []
    for entity in entities:
        if entity.get("discontinuous") or len(entity.get("fragments", ())) > 1:
            counts["discontinuous"] += 1
            if discontinuous == "drop":
                counts["discontinuous_dropped"] += 1
                continue
            counts["discontinuous_covered"] += 1
        flat.append({"start": entity["start"], "end": entity["end"], "label": entity["label"]})
    unique, seen = [], set()
    for entity in flat:
        key = (entity["start"], entity["end"], entity["label"])
        if key in seen:
            counts["duplicates_removed"] += 1
            continue
        seen.add(key)
        unique.append(entity)
    if nesting in ("per_type", "concatenate"):
        survivors = []
        for label in sorted({e["label"] for e in unique}):
            kept, _ = _outermost([e for e in unique if e["label"] == label], counts, "")
            survivors.extend(kept)
        if nesting == "concatenate":
            kept = _concatenate(survivors, counts)
        else:
            kept, _ = _outermost(survivors, counts, "_other_type")
    else:
        kept, _ = _outermost(unique, counts, "")
    return kept, counts


def _concatenate(entities: list[dict], counts: Counter) -> list[dict]:
    """Pieces between consecutive span boundaries, each labelled with the sorted types of the
    spans over it, joined; spans of one type must not overlap (resolved before)."""
    bounds = sorted({e["start"] for e in entities} | {e["end"] for e in entities})
    pieces = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        types = sorted({e["label"] for e in entities if e["start"] <= start and end <= e["end"]})
        if types:
            pieces.append({"start": start, "end": end, "label": JOIN.join(types)})
            counts["joined_spans"] += len(types) > 1
    counts["concatenated"] += sum(
        any(
            o["label"] != e["label"] and o["start"] < e["end"] and e["start"] < o["end"]
            for o in entities
        )
        for e in entities
    )
    return pieces


def _outermost(entities: list[dict], counts: Counter, suffix: str) -> tuple[list[dict], None]:
    kept = []
    for entity in sorted(entities, key=lambda e: (e["start"], -e["end"], e["label"])):
        clash = next(
            (k for k in kept if k["start"] < entity["end"] and entity["start"] < k["end"]), None
        )
        if clash is None:
            kept.append(entity)
        elif clash["start"] <= entity["start"] and entity["end"] <= clash["end"]:
            counts[f"nested_removed{suffix}"] += 1
        else:
            counts[f"crossing_removed{suffix}"] += 1
    return sorted(kept, key=lambda e: e["start"]), None


# ---------------------------------------------------------------------------------------------
# Splits and the whole task


def load_task(spec: dict, max_words: int, allow_network: bool | None = None) -> dict:
    """Read a `files` task spec; return `{"sentences": {split: [...]}, "documents": {split:
    [...]} (documents with entities, when the format has them), "labels": [...], "counts"}`.

    Dev is carved from train (by document where there are documents, else by sentence) with
    `seed` when the data has no dev split. Sentences are cut to at most `max_words` words.
    `allow_network` (hub downloads of the `huggingface` format) defaults to what the job's
    environment says (`network_allowed`, set from the config's `allow_network`).
    """
    spec = with_schema_defaults(spec, "task_files")
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise TaskDataError(f"tasks files: format {fmt!r} is unknown; use one of {FORMATS}")
    if fmt == "huggingface" and not (spec.get("name") or spec.get("path")):
        raise TaskDataError(
            "tasks files (huggingface): give the hub dataset `name` (ORG/NAME) or a local `path`"
        )
    path = Path(spec.get("path") or spec.get("name", "")).expanduser()
    if fmt != "huggingface" and not path.exists():
        raise TaskDataError(
            f"tasks files: path {path} does not exist; fix `path` in the config or fetch the data"
        )
    labels = spec.get("labels")
    seed = spec["seed"]
    dev_fraction = spec["dev_fraction"]
    counts: dict = {"format": fmt}
    origin: dict[str, Path] = {}
    if fmt in ("iob2", "iob1"):
        files = spec.get("splits") or {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
        sentences = {}
        for split, name in files.items():
            file = path / name if path.is_dir() else path.parent / name
            if not file.exists():
                if split == "dev" and "splits" not in spec:
                    continue
                raise TaskDataError(
                    f"tasks files: {split} file {file} does not exist; fix `splits.{split}`"
                )
            sentences[split], origin[split] = read_conll(file, fmt, labels), file
            if "documents" in spec:
                folder = Path(spec["documents"]).expanduser()
                for sentence, doc in zip(
                    sentences[split], sentence_documents(sentences[split], folder), strict=True
                ):
                    sentence["doc"] = doc
        documents = None
    elif fmt == "huggingface":
        allowed = network_allowed() if allow_network is None else allow_network
        sentences, origin, label = hf_splits(spec, labels, allowed)
        path = label  # for messages
        documents = None
    else:
        documents = _documents(fmt, path, spec, labels, seed, counts)
        if "dev" not in documents and "train" in documents:
            documents["train"], documents["dev"] = carve_dev(documents["train"], dev_fraction, seed)
        policy = Counter()
        mentions = 0
        for docs in documents.values():
            for doc in docs:
                mentions += len(doc["entities"])
                doc["entities"], changed = apply_policy(
                    doc["entities"],
                    spec["nesting"],
                    spec["discontinuous"],
                )
                policy.update(changed)
        counts["mentions_before_policy"] = mentions
        counts["mentions_after_policy"] = sum(
            len(d["entities"]) for docs in documents.values() for d in docs
        )
        counts["policy"] = dict(policy)
        sentences = {
            split: [s for d in docs for s in document_sentences(d, max_words)]
            for split, docs in documents.items()
        }
    if documents is None:
        if "dev" not in sentences and "train" in sentences:
            sentences["train"], sentences["dev"] = carve_dev_by_document(
                sentences["train"], dev_fraction, seed
            )
        sentences = {split: cut_sentences(ss, max_words) for split, ss in sentences.items()}
    for split in SPLITS:
        if not sentences.get(split):
            raise TaskDataError(
                f"tasks files ({fmt}, {origin.get(split, path)}): the {split} split has no "
                "sentence; check "
                "`path`, `splits` and `subcorpora` (dev is carved from train when missing: "
                "give train more data or a larger dev_fraction)"
            )
    found = sorted({t[2:] for ss in sentences.values() for s in ss for t in s["tags"] if t != "O"})
    for split in SPLITS:
        counts[split] = {"sentences": len(sentences[split])}
        if documents is not None:
            counts[split]["documents"] = len(documents[split])
    log.info("loaded %s task from %s: %s", fmt, path, counts)
    return {
        "sentences": {split: sentences[split] for split in SPLITS},
        "documents": None if documents is None else {s: documents[s] for s in SPLITS},
        # configured labels, plus the joined labels of `nesting: concatenate`
        "labels": sorted(set(labels) | set(found)) if labels else found,
        "counts": counts,
    }


def _documents(fmt, path, spec, labels, seed, counts) -> dict[str, list[dict]]:
    if fmt == "e3c-xmi":
        split_file = Path(spec.get("split_file") or path.parent.parent / "train_test_split.txt")
        if not split_file.exists():
            raise TaskDataError(
                f"tasks files: split file {split_file} does not exist; set `split_file` to "
                "E3C's train_test_split.txt"
            )
        train_ids = e3c_train_ids(split_file)
        out = {"train": [], "test": []}
        for xml in sorted(path.glob("*.xml")):
            doc = read_e3c_xmi(xml, labels, spec["label"])
            out["train" if doc["id"] in train_ids else "test"].append(doc)
        return out
    splits = spec.get("splits")
    folders = {s: path / s for s in SPLITS if (path / s).is_dir()}
    if splits and all(isinstance(v, str) for v in splits.values()):
        folders = {s: path / v for s, v in splits.items()}
    if folders:  # QUAERO layout
        subcorpora = spec.get("subcorpora")
        out = {}
        for split, folder in folders.items():
            roots = [folder / sub for sub in subcorpora] if subcorpora else [folder]
            for root in roots:
                if not root.is_dir():
                    raise TaskDataError(
                        f"tasks files: folder {root} does not exist; fix `subcorpora` or `splits`"
                    )
            out[split] = [d for root in roots for d in brat_documents(root, labels)]
        return out
    docs = brat_documents(path, labels)  # no split: seeded split by document
    fractions = splits or DEFAULT_FRACTIONS
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    out, start = {}, 0
    total = sum(fractions.values())
    for i, split in enumerate(SPLITS):
        n = len(docs) - start if i == 2 else round(len(docs) * fractions.get(split, 0) / total)
        out[split] = [docs[j] for j in sorted(order[start : start + n])]
        start += n
    counts["units"] = len(docs)
    return out


def cut_sentences(sentences: list[dict], max_words: int) -> list[dict]:
    """Sentences of at most `max_words` words, as `data.spans.document_sentences` cuts documents: a
    longer sentence becomes chunks `ID-0`, `ID-1`, ... whose tags stay IOB2 (a chunk starting
    inside an entity starts it with B-); shorter ones are kept as they are."""
    out = []
    for sentence in sentences:
        words, tags = sentence["words"], sentence["tags"]
        if len(words) <= max_words:
            out.append(sentence)
            continue
        for k, start in enumerate(range(0, len(words), max_words)):
            chunk = slice(start, start + max_words)
            chunk_id = f"{sentence['id']}-{k}"
            out.append(
                sentence | {"id": chunk_id, "words": words[chunk], "tags": to_iob2(tags[chunk])}
            )
    return out


def carve_dev(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """(train, dev): a seeded `fraction` of `items` (at least one) as dev, order kept; the NER
    loaders and the seq2seq pair tasks cut alike."""
    order = list(range(len(items)))
    random.Random(f"{seed}/dev").shuffle(order)
    n_dev = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
    dev = set(order[:n_dev])
    return (
        [x for i, x in enumerate(items) if i not in dev],
        [x for i, x in enumerate(items) if i in dev],
    )


def carve_dev_by_document(sentences: list[dict], fraction: float, seed: int) -> tuple[list, list]:
    """(train, dev) carved like `carve_dev`, by whole documents where the sentences name theirs
    (`doc`): a mention seen in a dev document's sentence is then no more likely to be in train
    than in test. Sentences without documents are carved one by one."""
    if not all("doc" in s for s in sentences):
        return carve_dev(sentences, fraction, seed)
    train_docs, _ = carve_dev(list(dict.fromkeys(s["doc"] for s in sentences)), fraction, seed)
    kept = set(train_docs)
    return (
        [s for s in sentences if s["doc"] in kept],
        [s for s in sentences if s["doc"] not in kept],
    )


def sentences_to_documents(sentences: list[dict]) -> list[dict]:
    """One document per sentence (words joined by spaces, entities from the IOB2 tags), for
    the steps that need text, such as the abbreviation test set."""
    docs = []
    for sentence in sentences:
        offsets, position = [], 0
        for word in sentence["words"]:
            offsets.append((position, position + len(word)))
            position += len(word) + 1
        entities = [
            {"start": offsets[i][0], "end": offsets[end - 1][1], "label": sentence["tags"][i][2:]}
            for i, end in tag_spans(sentence["tags"])
        ]
        docs.append(
            {"id": sentence["id"], "text": " ".join(sentence["words"]), "entities": entities}
        )
    return docs
