"""Small atomic file helpers: a killed job never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix); rename it over `path` on success.

    If the body raises, the temporary file is removed and any previous `path` is left intact.
    The suffix is kept because some writers (matplotlib, safetensors) read the format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide results from colleagues
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """Yield a text handle whose content replaces `path` only if the body succeeds."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline="\n") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_write(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@contextmanager
def atomic_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces `out_dir` only if the body succeeds.

    A job killed while writing leaves no half-written folder that looks complete.
    """
    import shutil

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_pretrained_atomic(model, tokenizer, out_dir: str | os.PathLike) -> None:
    """`save_pretrained` the model and its tokenizer into `out_dir`, atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)


def copy_dir_atomic(source: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    import shutil

    with atomic_dir(out_dir) as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)


def write_jsonl(docs: Iterable[dict], path: str | os.PathLike) -> None:
    """Write one JSON object per line, atomically (temporary file then `os.replace`)."""
    with atomic_write(path) as handle:
        for doc in docs:
            handle.write(json.dumps(doc, ensure_ascii=False))
            handle.write("\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def json_lines(text: str, problem: Callable[[int, str], Exception]) -> Iterator[tuple[int, dict]]:
    """`(line number, object)` for each non-blank line of JSON-lines text; a line that is not a
    JSON object raises `problem(line number, what is wrong)`. Lines are split on "\n" only:
    `str.splitlines` would also cut at U+2028, which JSON allows inside strings."""
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise problem(
                number, f"is not valid JSON ({error.msg} at column {error.colno})"
            ) from None
        if not isinstance(record, dict):
            raise problem(number, f"is not a JSON object but a {type(record).__name__}")
        yield number, record
