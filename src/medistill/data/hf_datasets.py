"""Hugging Face datasets: every dataset the library opens, from the hub (`name`, `config`,
`revision`; offline unless the network is allowed) or from a local copy (a `save_to_disk`
folder, a `.parquet` file or a folder of data files, never touching the hub); and the
`huggingface` task format, whose splits hold words and tags.

`datasets` is imported only when a dataset is opened: it is slow to import and optional.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.data.spans import to_iob2
from medistill.data.task_files import ENTITY_TAG, check_label

# ---------------------------------------------------------------------------------------------
# Opening a dataset


def network_allowed() -> bool:
    """Whether hub downloads are allowed: `medistill.core.runtime.prepare_job` sets HF_HUB_OFFLINE
    and HF_DATASETS_OFFLINE unless the config's top-level `allow_network` is true (for the
    `huggingface` task format and the `huggingface` corpus source of `medistill.data.sources`)."""
    return not any(
        os.environ.get(var, "").upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


@contextmanager
def offline(active: bool):
    """Hub calls fail at once (no request) while `active`, even where `datasets` was imported
    before the environment said so (its offline flag is read at import)."""
    if not active:
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


def is_saved(path: Path) -> bool:
    """Whether `path` is a `Dataset.save_to_disk` / `DatasetDict.save_to_disk` folder."""
    return path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json"))


def load_saved(path: Path):
    """A `save_to_disk` folder: a `Dataset`, or a `DatasetDict` of splits."""
    import datasets

    with offline(True):
        return datasets.load_from_disk(str(path))


def load_parquet(path: Path):
    """One `.parquet` file, as a single `Dataset`."""
    import datasets

    with offline(True):
        return datasets.load_dataset("parquet", data_files=str(path), split="train")


def load_data_folder(path: Path, config: str | None = None):
    """A folder of data files (parquet, json, csv) that `load_dataset` reads: a `DatasetDict`."""
    import datasets

    with offline(True):
        return datasets.load_dataset(str(path), config)


def load_hub(
    name: str,
    config: str | None = None,
    revision: str | None = None,
    allow_network: bool = False,
    split: str | None = None,
):
    """A hub dataset (all its splits, or `split`); from the local cache alone unless
    `allow_network`."""
    import datasets

    with offline(not allow_network):
        return datasets.load_dataset(name, config, split=split, revision=revision)


# ---------------------------------------------------------------------------------------------
# The `huggingface` task format: words and tags

HF_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


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
        try:
            data = load_saved(path) if is_saved(path) else load_data_folder(path, config)
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
            data = load_hub(name, config, revision, allow_network)
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
            if tag != "O" and not ENTITY_TAG.match(tag):
                raise TaskDataError(f"{at}: tag {tag!r} is not O, B-TYPE or I-TYPE; fix the tag")
            if tag != "O":
                check_label(tag[2:], labels, at)
            tags.append(tag)
        if words:
            sentences.append(
                {"id": f"{prefix}{row}", "words": [str(w) for w in words], "tags": to_iob2(tags)}
            )
    return sentences


def hf_splits(spec: dict, labels, allow_network: bool) -> tuple[dict, dict, str]:
    """The task's sentences per split (train/dev/test mapped to the dataset's split names by
    `splits`, default `HF_SPLITS`), where each came from, and the dataset's label."""
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
            spec["tokens_column"],
            spec["tags_column"],
            labels,
            prefix,
        )
        origin[split] = where
    return sentences, origin, label
