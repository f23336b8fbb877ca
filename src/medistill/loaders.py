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
- `huggingface`: a Hugging Face dataset of words and tags (`tokens_column`, `tags_column`;
  ClassLabel ids become their names; IOB1 is converted to IOB2), by hub `name` (+ `config`,
  `revision`; downloaded only where the network is allowed) or a local `path` (a
  `save_to_disk` folder or a folder of data files); `splits` maps train/dev/test to the
  dataset's split names (default train, validation, test).

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
import os
import random
import re
import xml.etree.ElementTree as ET
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from medistill.errors import TaskDataError
from medistill.spans import document_sentences, to_iob2

FORMATS = ("brat", "iob2", "iob1", "e3c-xmi", "huggingface")
NESTING = ("outermost", "per_type", "concatenate")
DISCONTINUOUS = ("cover", "drop")
SPLITS = ("train", "dev", "test")
CUI = re.compile(r"^C\d{7}$")
GROUP = re.compile(r"^[A-Z]{4}(\|[A-Z]{4})*$")
DEFAULT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
DEFAULT_DEV_FRACTION = 0.1
HF_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
JOIN = "_"  # concatenate: the types over a word, sorted and joined (ANAT_DISO)
log = logging.getLogger(__name__)


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


def cut_sentences(sentences: list[dict], max_words: int) -> list[dict]:
    """Sentences of at most `max_words` words, as `tasks.document_sentences` cuts documents: a
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
            out.append(
                {"id": f"{sentence['id']}-{k}", "words": words[chunk], "tags": to_iob2(tags[chunk])}
            )
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
# Hugging Face datasets (words + tags)


def network_allowed() -> bool:
    """Whether hub downloads are allowed: `medistill.runtime.prepare_job` sets HF_HUB_OFFLINE
    and HF_DATASETS_OFFLINE unless the config's top-level `allow_network` is true (as for the
    `huggingface` corpus source of `medistill.sources`)."""
    return not any(
        os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@contextmanager
def _offline(offline: bool):
    """Hub calls fail at once (no request) while `offline`, even where `datasets` was imported
    before the environment said so (its offline flag is read at import)."""
    if not offline:
        yield
        return
    import datasets.config
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def open_hf_dataset(spec: dict, allow_network: bool) -> tuple[dict, str]:
    """The splits (`{name: Dataset}`) of a hub dataset (`name`, `config`, `revision`) or of a
    local `path` (a `save_to_disk` folder, or a folder of data files `load_dataset` reads), and
    a label naming it. A single saved `Dataset` is the split `train`."""
    import datasets

    config = spec.get("config")
    if spec.get("path"):
        path = Path(spec["path"]).expanduser()
        if not path.exists():
            raise TaskDataError(
                f"tasks files (huggingface): path {path} does not exist; fix `path`, or give the "
                "hub `name` instead"
            )
        label = str(path)
        saved = path.is_dir() and any(
            (path / f).is_file() for f in ("dataset_dict.json", "state.json")
        )
        try:
            with _offline(True):
                data = (
                    datasets.load_from_disk(str(path))
                    if saved
                    else datasets.load_dataset(str(path), config)
                )
        except Exception as error:  # noqa: BLE001 - datasets raises many types
            raise TaskDataError(
                f"tasks files (huggingface): cannot read the local dataset {path} ({error}); "
                "give a `Dataset.save_to_disk` / `DatasetDict.save_to_disk` folder or a folder "
                "of data files (parquet, json, csv)"
            ) from None
    else:
        name, revision = spec["name"], spec.get("revision")
        label = name + (f" ({config})" if config else "")
        try:
            with _offline(not allow_network):
                data = datasets.load_dataset(name, config, revision=revision)
        except Exception as error:  # noqa: BLE001 - datasets raises many types
            where = (
                f"tasks files (huggingface): cannot load hub dataset {name} (config {config}, "
                f"revision {revision or 'default'})"
            )
            args = ", ".join(repr(a) for a in (name, config) if a) + (
                f", revision={revision!r}" if revision else ""
            )
            folder = name.split("/")[-1] + (f"-{config}" if config else "")
            fetch = (
                f'`python -c "import datasets; datasets.load_dataset({args})'
                f".save_to_disk('{folder}')\"`, copy the folder here and set `path: {folder}` "
                "instead of `name`"
            )
            if "scripts are no longer supported" in str(error):
                raise TaskDataError(
                    f"{where}: it is a loading script, which datasets 4 and later cannot run. "
                    "Save it elsewhere with an older datasets (`pip install 'datasets<4'`, "
                    f"trust_remote_code=True in load_dataset): {fetch}"
                ) from None
            if allow_network:
                raise TaskDataError(
                    f"{where}: {error}; check `name`, `config` and `revision`"
                ) from None
            raise TaskDataError(
                f"{where}: it is not in the local Hugging Face cache and allow_network is false "
                f"({type(error).__name__}). Download it on a machine with access: {fetch}; or "
                "set `allow_network: true` at the top of the config"
            ) from None
    if isinstance(data, datasets.Dataset):
        data = {"train": data}
    return dict(data), label


def hf_sentences(
    data,
    where: str,
    tokens_column: str = "tokens",
    tags_column: str = "ner_tags",
    labels: list[str] | None = None,
    prefix: str = "",
) -> list[dict]:
    """Sentences `{"id", "words", "tags"}` (tags IOB2) of one dataset split: tag ids of a
    ClassLabel column become its names; IOB1 or loose IOB2 becomes IOB2 (`to_iob2`)."""
    import datasets

    for column, key in ((tokens_column, "tokens_column"), (tags_column, "tags_column")):
        if column not in data.column_names:
            raise TaskDataError(
                f"{where}: no column {column!r} (columns: {', '.join(data.column_names)}); set "
                f"`{key}`"
            )
    inner = getattr(data.features[tags_column], "feature", None)
    names = inner.names if isinstance(inner, datasets.ClassLabel) else None
    sentences = []
    for row, (words, raw) in enumerate(zip(data[tokens_column], data[tags_column], strict=True)):
        at = f"{where} row {row}"
        if len(words) != len(raw):
            raise TaskDataError(
                f"{at}: {len(words)} tokens but {len(raw)} tags; fix the row or the columns"
            )
        tags = []
        for tag in raw:
            if isinstance(tag, int):
                if names is None:
                    raise TaskDataError(
                        f"{at}: tag {tag} is an id but {tags_column!r} is not a ClassLabel "
                        "sequence; cast it to ClassLabel (with the tag names) or store strings"
                    )
                tag = names[tag]
            if tag != "O" and not re.match(r"^[BI]-\S+$", tag):
                raise TaskDataError(f"{at}: tag {tag!r} is not O, B-TYPE or I-TYPE; fix the tag")
            if tag != "O":
                _check_label(tag[2:], labels, at)
            tags.append(tag)
        if words:
            sentences.append(
                {"id": f"{prefix}{row}", "words": [str(w) for w in words], "tags": to_iob2(tags)}
            )
    return sentences


def _hf_splits(spec: dict, labels, allow_network: bool) -> tuple[dict, dict, str]:
    data, label = open_hf_dataset(spec, allow_network)
    mapping = spec.get("splits")
    if not mapping:
        dev = next((n for n in ("validation", "dev") if n in data), HF_SPLITS["dev"])
        mapping = {**HF_SPLITS, "dev": dev}
    sentences, origin = {}, {}
    for split, name in mapping.items():
        if name not in data:
            if split == "dev" and not spec.get("splits"):
                continue  # carved from train
            raise TaskDataError(
                f"tasks files (huggingface): {label} has no split {name!r} (splits: "
                f"{', '.join(data)}); set `splits.{split}` to one of them"
            )
        where = f"{label} split {name}"
        prefix = f"{label.split('/')[-1].split()[0]}-{name}-"
        sentences[split] = hf_sentences(
            data[name],
            where,
            spec.get("tokens_column", "tokens"),
            spec.get("tags_column", "ner_tags"),
            labels,
            prefix,
        )
        origin[split] = where
    return sentences, origin, label


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
        documents = None
    elif fmt == "huggingface":
        allowed = network_allowed() if allow_network is None else allow_network
        sentences, origin, label = _hf_splits(spec, labels, allowed)
        path = label  # for messages
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
    if documents is None:
        if "dev" not in sentences and "train" in sentences:
            sentences["train"], sentences["dev"] = _carve(sentences["train"], dev_fraction, seed)
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
    from medistill.spans import tag_spans

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
