"""Task loaders: real French biomedical NER corpora -> the task format.

A task (`tasks.NAME.files` in the config) reads one of these formats:

- `brat`: BRAT standoff (`.txt` + `.ann`). Either the QUAERO layout
  (`PATH/{train,dev,test}/{EMEA,MEDLINE}/*.ann`, the entity type as given; `subcorpora` picks
  EMEA, MEDLINE or both) or a flat folder without a split, like Mantra (the `T` type is a
  UMLS CUI, the semantic group is the last field of the `#` AnnotatorNotes line), split by
  document with a seed (`splits` gives fractions). Editor backups (`*.ann~`) are ignored.
- `iob2` / `iob1`: CoNLL files, `token TAG` per line, a blank line between sentences
  (`splits` names the file of each split); IOB1 is converted to IOB2.
- `e3c-xmi`: E3C UIMA XMI files (`custom:CLINENTITY`), read as XML; the official split of
  `train_test_split.txt`; sentences are the dkpro `Sentence` elements.

BRAT and XMI entities go through an explicit policy for spans a flat IOB2 tagger cannot hold:
discontinuous spans are replaced by their covering span (`cover`) or dropped (`drop`); nested
or overlapping spans keep the outermost one (`outermost`), or resolve nesting within each
type first and then across types (`per_type`, see `apply_policy`). What the policy changed is
counted.

A split with no sentence, offsets past the end of a text, a span text that differs from the
`.ann` text field or a label outside the configured `labels` raise `TaskDataError`, naming the
file, the line and the fix.
"""

from __future__ import annotations

import logging
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from medistill.tasks import document_sentences

FORMATS = ("brat", "iob2", "iob1", "e3c-xmi")
NESTING = ("outermost", "per_type")
DISCONTINUOUS = ("cover", "drop")
SPLITS = ("train", "dev", "test")
CUI = re.compile(r"^C\d{7}$")
GROUP = re.compile(r"^[A-Z]{4}(\|[A-Z]{4})*$")
DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
DEFAULT_DEV_FRACTION = 0.1
log = logging.getLogger(__name__)


class TaskDataError(ValueError):
    """Task data that cannot be read, phrased for the person who has to fix it."""


# ---------------------------------------------------------------------------------------------
# BRAT


def read_brat(ann_path: Path, labels: list[str] | None = None) -> dict:
    """One BRAT document: `{"id", "text", "entities"}`; each entity has `start`, `end`,
    `label`, `fragments` (the `(start, end)` pieces) and `where` (file:line)."""
    ann_path = Path(ann_path)
    txt_path = ann_path.with_suffix(".txt")
    if not txt_path.exists():
        raise TaskDataError(f"{ann_path}: no text file {txt_path.name} beside it; add it")
    text = _read(txt_path)
    lines = _read(ann_path).splitlines()
    notes, raw = {}, []
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            fields = line.split("\t")
            ref = fields[1].split() if len(fields) > 1 else []
            if len(fields) >= 3 and len(ref) == 2 and ref[0] == "AnnotatorNotes":
                notes[ref[1]] = semantic_group(fields[2])
        elif line.startswith("T"):
            raw.append((number, line))
    entities = []
    for number, line in raw:
        where = f"{ann_path} line {number}"
        fields = line.split("\t")
        if len(fields) < 3:
            raise TaskDataError(
                f"{where}: a T line needs 3 tab-separated fields (id, 'TYPE START END', "
                "text); fix the line"
            )
        tid, middle, surface = fields[0], fields[1], fields[2]
        label, _, offsets = middle.partition(" ")
        try:
            fragments = [
                (int(a), int(b)) for a, b in (piece.split() for piece in offsets.split(";"))
            ]
        except ValueError:
            raise TaskDataError(
                f"{where}: offsets {offsets!r} are not 'START END[;START END...]'; fix the line"
            ) from None
        for a, b in fragments:
            if not 0 <= a < b <= len(text):
                raise TaskDataError(
                    f"{where}: span {a}-{b} is outside the text of {txt_path.name} "
                    f"({len(text)} characters); fix the offsets or the text file"
                )
        found = " ".join(text[a:b] for a, b in fragments)
        if found.split() != surface.split():
            raise TaskDataError(
                f"{where}: span text {found!r} does not match the .ann text field "
                f"{surface!r}; fix the offsets or the text field"
            )
        if CUI.match(label):
            if tid not in notes:
                raise TaskDataError(
                    f"{where}: type {label} is a UMLS CUI but no '#' AnnotatorNotes line "
                    f"gives {tid} a semantic group; add the note"
                )
            label = notes[tid]
        _check_label(label, labels, where)
        entities.append(
            {
                "start": fragments[0][0],
                "end": fragments[-1][1],
                "label": label,
                "fragments": fragments,
                "where": where,
            }
        )
    return {"id": ann_path.stem, "text": text, "entities": entities}


def semantic_group(note: str) -> str:
    """The semantic group of a Mantra AnnotatorNotes text: its last quoted field
    (`"C0030705", "Patients", "Patient or Disabled Group" ,"LIVB"` -> `LIVB`); fields may hold
    commas. Where a note swaps the last two fields, the last field that is a group code (four
    capitals) wins; of several groups (`OBJC|CHEM`) the first."""
    fields = re.findall(r'"([^"]*)"', note) or [f.strip() for f in note.split(",")]
    codes = [f.strip() for f in fields if GROUP.match(f.strip())]
    return (codes[-1] if codes else fields[-1].strip()).split("|")[0]


def brat_documents(folder: Path, labels: list[str] | None = None) -> list[dict]:
    """Every `.ann` under `folder` (sorted; `*.ann~` backups ignored), ids made unique by
    their relative folder."""
    folder = Path(folder)
    docs = []
    for ann in sorted(folder.rglob("*.ann")):
        doc = read_brat(ann, labels)
        doc["id"] = str(ann.relative_to(folder).with_suffix("")).replace("/", "__")
        docs.append(doc)
    return docs


# ---------------------------------------------------------------------------------------------
# CoNLL IOB1 / IOB2


def read_conll(path: Path, scheme: str = "iob2", labels: list[str] | None = None) -> list[dict]:
    """Sentences `{"id", "words", "tags"}` (tags IOB2) of a `token TAG` file; IOB1 tags, and
    stray I- tags in IOB2 files, become IOB2 (a run's first I-X becomes B-X)."""
    path = Path(path)
    sentences, words, tags = [], [], []

    def flush():
        if words:
            sentences.append(
                {"id": f"{path.stem}-{len(sentences)}", "words": words[:], "tags": to_iob2(tags)}
            )
            words.clear()
            tags.clear()

    for number, line in enumerate(_read(path).splitlines(), 1):
        if not line.strip():
            flush()
            continue
        fields = line.split()
        where = f"{path} line {number}"
        if len(fields) < 2:
            raise TaskDataError(
                f"{where}: expected 'token TAG', got {line!r}; add the tag or remove the line"
            )
        tag = fields[-1]
        if tag != "O" and not re.match(r"^[BI]-\S+$", tag):
            raise TaskDataError(
                f"{where}: tag {tag!r} is not O, B-TYPE or I-TYPE ({scheme}); fix the tag"
            )
        if tag != "O":
            _check_label(tag[2:], labels, where)
        words.append(fields[0])
        tags.append(tag)
    flush()
    return sentences


def to_iob2(tags: list[str]) -> list[str]:
    """IOB1 (or loose IOB2) -> IOB2: an I-X that does not continue an X run becomes B-X."""
    out = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-") and (i == 0 or tags[i - 1] == "O" or tags[i - 1][2:] != tag[2:]):
            tag = f"B-{tag[2:]}"
        out.append(tag)
    return out


# ---------------------------------------------------------------------------------------------
# E3C XMI

XMI_NS = {
    "cas": "http:///uima/cas.ecore",
    "custom": "http:///webanno/custom.ecore",
    "seg": "http:///de/tudarmstadt/ukp/dkpro/core/api/segmentation/type.ecore",
}


def read_e3c_xmi(path: Path, labels: list[str] | None = None, label: str = "CLINENTITY") -> dict:
    """One E3C document: the `cas:Sofa` text, `custom:CLINENTITY` entities (label `label`;
    `discontinuous` ones carry their covering span) and the dkpro `Sentence` spans."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as error:
        raise TaskDataError(f"{path}: not valid XML ({error}); fix or remove the file") from None
    sofa = root.find("cas:Sofa", XMI_NS)
    if sofa is None or sofa.get("sofaString") is None:
        raise TaskDataError(f"{path}: no cas:Sofa with a sofaString; is this a UIMA XMI file?")
    text = sofa.get("sofaString")
    _check_label(label, labels, str(path))
    entities = []
    for element in root.findall("custom:CLINENTITY", XMI_NS):
        where = f"{path} element xmi:id={element.get('{http://www.omg.org/XMI}id')}"
        start, end = int(element.get("begin")), int(element.get("end"))
        if not 0 <= start < end <= len(text):
            raise TaskDataError(
                f"{where}: span {start}-{end} is outside the document text "
                f"({len(text)} characters); fix begin/end"
            )
        entity = {"start": start, "end": end, "label": label, "where": where}
        if element.get("discontinuous"):
            entity["discontinuous"] = True  # begin/end is already the covering span
        entities.append(entity)
    sentences = sorted(
        (int(s.get("begin")), int(s.get("end"))) for s in root.findall("seg:Sentence", XMI_NS)
    )
    return {"id": path.stem, "text": text, "entities": entities, "sentences": sentences}


def e3c_train_ids(split_file: Path) -> set[str]:
    """The training document ids listed in E3C's `train_test_split.txt` (all languages)."""
    return set(re.findall(r"'([A-Z]{2}\d+)'", _read(Path(split_file))))


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
    (`nested_other_type_removed`). Exact duplicates (same span, same label) are removed.
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
    if nesting == "per_type":
        survivors = []
        for label in sorted({e["label"] for e in unique}):
            kept, _ = _outermost([e for e in unique if e["label"] == label], counts, "")
            survivors.extend(kept)
        kept, _ = _outermost(survivors, counts, "_other_type")
    else:
        kept, _ = _outermost(unique, counts, "")
    return kept, counts


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


def load_task(spec: dict, max_words: int) -> dict:
    """Read a `files` task spec; return `{"sentences": {split: [...]}, "documents": {split:
    [...]} (documents with entities, when the format has them), "labels": [...], "counts"}`.

    Dev is carved from train (by document where there are documents, else by sentence) with
    `seed` when the data has no dev split.
    """
    fmt = spec.get("format")
    if fmt not in FORMATS:
        raise TaskDataError(f"tasks files: format {fmt!r} is unknown; use one of {FORMATS}")
    path = Path(spec["path"]).expanduser()
    if not path.exists():
        raise TaskDataError(
            f"tasks files: path {path} does not exist; fix `path` in the config or fetch the data"
        )
    labels = spec.get("labels")
    seed = spec.get("seed", 0)
    dev_fraction = spec.get("dev_fraction", DEFAULT_DEV_FRACTION)
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
        if "dev" not in sentences and "train" in sentences:
            sentences["train"], sentences["dev"] = _carve(sentences["train"], dev_fraction, seed)
        documents = None
    else:
        documents = _documents(fmt, path, spec, labels, seed, counts)
        if "dev" not in documents and "train" in documents:
            documents["train"], documents["dev"] = _carve(documents["train"], dev_fraction, seed)
        policy = Counter()
        mentions = 0
        for docs in documents.values():
            for doc in docs:
                mentions += len(doc["entities"])
                doc["entities"], changed = apply_policy(
                    doc["entities"],
                    spec.get("nesting", "outermost"),
                    spec.get("discontinuous", "cover"),
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
        "labels": sorted(labels) if labels else found,
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
            doc = read_e3c_xmi(xml, labels, spec.get("label", "CLINENTITY"))
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


def _carve(items: list, fraction: float, seed: int) -> tuple[list, list]:
    order = list(range(len(items)))
    random.Random(f"{seed}/dev").shuffle(order)
    n_dev = max(1, round(len(items) * fraction)) if len(items) > 1 else 0
    dev = set(order[:n_dev])
    return (
        [x for i, x in enumerate(items) if i not in dev],
        [x for i, x in enumerate(items) if i in dev],
    )


def sentences_to_documents(sentences: list[dict]) -> list[dict]:
    """One document per sentence (words joined by spaces, entities from the IOB2 tags), for
    the steps that need text, such as the abbreviation test set."""
    from medistill.tasks import tag_spans

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


def _check_label(label: str, labels: list[str] | None, where: str) -> None:
    if labels and label not in labels:
        raise TaskDataError(
            f"{where}: label {label!r} is not in the configured labels {labels}; add it to "
            "`labels` or fix the annotation"
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TaskDataError(
            f"{path} is not UTF-8 ({error.reason} at byte {error.start}); convert it first"
        ) from None


__all__ = ["TaskDataError", "apply_policy", "load_task", "read_brat", "read_conll"]
