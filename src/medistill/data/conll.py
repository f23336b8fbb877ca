"""CoNLL task files: `token TAG` per line, a blank line between sentences; IOB1 (or loose
IOB2) tags become IOB2."""

from __future__ import annotations

from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.data.spans import to_iob2
from medistill.data.task_files import ENTITY_TAG, check_label, read_utf8


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

    for number, line in enumerate(read_utf8(path).splitlines(), 1):
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
        if tag != "O" and not ENTITY_TAG.match(tag):
            raise TaskDataError(
                f"{where}: tag {tag!r} is not O, B-TYPE or I-TYPE ({scheme}); fix the tag"
            )
        if tag != "O":
            check_label(tag[2:], labels, where)
        words.append(fields[0])
        tags.append(tag)
    flush()
    return sentences
