"""BRAT standoff task files (`.txt` + `.ann`): documents with entity spans.

The entity type is the `T` line's type, or, where that type is a UMLS CUI (Mantra), the semantic
group of the `#` AnnotatorNotes line. Fragments of discontinuous spans are kept for the
loaders' policy (`medistill.data.loaders.apply_policy`).
"""

from __future__ import annotations

import re
from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.data.task_files import check_label, read_utf8

CUI = re.compile(r"^C\d{7}$")
GROUP = re.compile(r"^[A-Z]{4}(\|[A-Z]{4})*$")


def read_brat(ann_path: Path, labels: list[str] | None = None) -> dict:
    """One BRAT document: `{"id", "text", "entities"}`; each entity has `start`, `end`,
    `label`, `fragments` (the `(start, end)` pieces) and `where` (file:line)."""
    ann_path = Path(ann_path)
    txt_path = ann_path.with_suffix(".txt")
    if not txt_path.exists():
        raise TaskDataError(f"{ann_path}: no text file {txt_path.name} beside it; add it")
    text = read_utf8(txt_path)
    lines = read_utf8(ann_path).splitlines()
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
        check_label(label, labels, where)
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
