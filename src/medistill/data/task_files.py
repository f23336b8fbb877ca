"""What the task-file readers share: UTF-8 reading, the tag syntax and the configured-label
check, each failure a `TaskDataError` that names the file and the fix."""

from __future__ import annotations

import re
from pathlib import Path

from medistill.core.errors import TaskDataError

# A tag other than O: B- or I- then the entity type.
ENTITY_TAG = re.compile(r"^[BI]-\S+$")


def check_label(label: str, labels: list[str] | None, where: str) -> None:
    """Fail on a label outside the configured `labels` (no `labels`: any label is fine)."""
    if labels and label not in labels:
        raise TaskDataError(
            f"{where}: label {label!r} is not in the configured labels {labels}; add it to "
            "`labels` or fix the annotation"
        )


def read_utf8(path: Path) -> str:
    """The text of a task file, which must be UTF-8."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise TaskDataError(
            f"{path} is not UTF-8 ({error.reason} at byte {error.start}); convert it first"
        ) from None
