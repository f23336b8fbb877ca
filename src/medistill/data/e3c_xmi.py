"""E3C UIMA XMI task files, read as XML: the `cas:Sofa` text, `custom:CLINENTITY` entities, the
dkpro `Sentence` spans, and the official train/test split of `train_test_split.txt`; and the
document each sentence of E3C's IOB2 files comes from."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.data.task_files import check_label, read_utf8

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
    check_label(label, labels, str(path))
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
    return set(re.findall(r"'([A-Z]{2}\d+)'", read_utf8(Path(split_file))))


def sentence_documents(sentences: list[dict], folder: Path) -> list[str]:
    """The id of the XMI document (file stem in `folder`) each sentence comes from: its words,
    joined without spaces, found in the document's text without spaces. Sentences come in
    document order, so each is first looked for after the previous one in the same document.
    E3C's IOB2 files name no document; this lets dev be carved and the bootstrap resample by
    document."""
    folder = Path(folder)
    texts = {
        path.stem: re.sub(r"\s+", "", read_e3c_xmi(path)["text"])
        for path in sorted(folder.glob("*.xml"))
    }
    if not texts:
        raise TaskDataError(f"{folder}: no E3C XMI file (*.xml); fix `documents`")
    documents, current, position = [], None, 0
    for sentence in sentences:
        key = "".join(sentence["words"])
        found = texts[current].find(key, position) if current else -1
        if found < 0:
            current = next((doc for doc, text in texts.items() if key in text), None)
            if current is None:
                raise TaskDataError(
                    f"sentence {sentence['id']} ({len(sentence['words'])} words) is in no "
                    f"document of {folder}; is `documents` the same corpus and layer as `path`?"
                )
            found = texts[current].find(key)
        position = found + len(key)
        documents.append(current)
    return documents
