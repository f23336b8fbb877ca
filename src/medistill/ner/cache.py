"""A teacher's outputs over a corpus, computed once and shared by the students distilled from it.

The task cache (`build_cache`): a fine-tuned token classifier's label logits at each word's
first sub-token (or the log of several seed runs' averaged distribution). Shard tensors:
`logits` [words, labels] float16 (word counts come from the corpus). The general cache
(`medistill.ner.general_cache`) shares the shard machinery below.

Layout of a cache folder:
    shard-KEY-00000.safetensors         the tensors of `shard_size` consecutive sentences
    shard-KEY-00000.safetensors.sha256  its checksum, written right after it
    manifest.json                       teacher, tokenizer, corpus, recipe, sizes, shards (last)

Shards and sidecars are written atomically. A rerun keeps every shard whose checksum matches its
sidecar and recomputes the others (missing, corrupted, or killed between shard and sidecar), so
a killed caching job resumes where it stopped and ends with the same bytes as an uninterrupted
run. KEY hashes everything a shard's content depends on; shards with another key are deleted.
The manifest is the declared output: it exists only once every shard does, and readers check it
against their corpus, tokenizer and teacher before trusting a single number.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save_file
from tqdm import tqdm

from medistill.core.device import choose_device
from medistill.core.encoding import collate, encode_sentences, length_batches
from medistill.core.hashing import file_sha256
from medistill.core.io import atomic_path, atomic_write, read_json, write_json
from medistill.data.spans import read_sentences

DTYPE = "float16"
# What a differing manifest field means, for the error message.
_MISMATCH = {
    "corpus_hash": "on other sentences than the corpus given",
    "tokenizer_hash": "with another tokenizer",
    "teacher_sha": "by other teacher weights",
}


def sentences_fingerprint(sentences: list[dict]) -> str:
    """Ties a cache to the exact word sequence it was computed on."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(json.dumps(sentence["words"], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


def tokenizer_hash(tokenizer) -> str:
    """Ties a cache to the tokenizer's vocabulary, normaliser and special-token template.

    Truncation and padding are dropped from the serialised tokenizer: they are call-time state
    (the first `tokenizer(..., truncation=True, max_length=n)` writes them), not what it does.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:  # a pure-Python (e.g. remote-code) tokenizer: its vocabulary is all we have
        described = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    else:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        described = json.dumps(state)  # to_str's key order is fixed: no sorting needed
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def teacher_weights_sha(teacher_dir: Path) -> str:
    """Ties a cache to the teacher's weight files (safetensors, else PyTorch .bin)."""
    folder = Path(teacher_dir)
    weights = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return hashlib.sha256("".join(map(file_sha256, weights)).encode()).hexdigest()[:16]


@torch.no_grad()
def word_logits(model, tokenizer, sentences, max_length, batch_size, device) -> list[np.ndarray]:
    """One [words, labels] array per sentence, read at each word's first sub-token."""
    features = encode_sentences(tokenizer, sentences, max_length)
    out: list[np.ndarray] = [np.empty(0)] * len(features)
    for indices in length_batches(features, batch_size):
        batch = collate([features[i] for i in indices], tokenizer.pad_token_id)
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits.float()
        for row, index in enumerate(indices):
            positions = (batch["word_index"][row] >= 0).nonzero().squeeze(1)
            out[index] = logits[row, positions.to(device)].cpu().numpy()
    return out


def averaged_word_logits(models, tokenizer, sentences, *args) -> list[np.ndarray]:
    """`word_logits` of one model, or of several runs as one teacher: the log of their mean
    word-level label distribution (log-probabilities are logits whose softmax is that mean)."""
    per_model = [word_logits(model, tokenizer, sentences, *args) for model in models]
    if len(per_model) == 1:
        return per_model[0]
    return [
        np.log(np.mean([torch.softmax(torch.from_numpy(a), -1).numpy() for a in arrays], 0))
        for arrays in zip(*per_model, strict=True)
    ]


def shard_key(**recipe) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]


def _sidecar(shard: Path) -> Path:
    return shard.with_name(shard.name + ".sha256")


def _intact_sha256(shard: Path) -> str | None:
    """The shard's checksum if it exists and matches its sidecar, else None (recompute it)."""
    sidecar = _sidecar(shard)
    if not (shard.exists() and sidecar.exists()):
        return None
    digest = file_sha256(shard)
    return digest if sidecar.read_text().strip() == digest else None


def _save_shard(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write the shard, then its checksum sidecar (each atomically); return the checksum."""
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp))
    digest = file_sha256(path)
    with atomic_write(_sidecar(path)) as handle:
        handle.write(digest + "\n")
    return digest


def write_shards(out_dir: Path, key: str, n_sentences: int, shard_size: int, compute, desc: str):
    """Compute (`compute(start, stop) -> arrays`) every shard that is not already intact.

    Returns the manifest's `shards` entries and the shards' total size in bytes.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # a folder being (re)built has no manifest, so a killed rebuild is never mistaken for a cache
    (out_dir / "manifest.json").unlink(missing_ok=True)
    for stale in out_dir.glob("shard-*.safetensors*"):
        if not stale.name.startswith(f"shard-{key}-"):
            stale.unlink()
    for orphan in out_dir.glob(".shard-*"):  # temporary files of a job killed while writing
        orphan.unlink()
    shards, total_bytes = [], 0
    starts = range(0, n_sentences, shard_size)
    for index, start in enumerate(tqdm(starts, desc=desc, unit="shard")):
        path = out_dir / f"shard-{key}-{index:05d}.safetensors"
        stop = min(start + shard_size, n_sentences)
        digest = _intact_sha256(path) or _save_shard(path, compute(start, stop))
        total_bytes += path.stat().st_size
        shards.append(
            {
                "file": path.name,
                "first_sentence": start,
                "sentences": stop - start,
                "sha256": digest,
            }
        )
    return shards, total_bytes


def load_shard(manifest_path: Path, shard: dict) -> dict[str, np.ndarray]:
    """The shard's tensors, after checking its bytes against the manifest's checksum."""
    path = manifest_path.parent / shard["file"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != shard["sha256"]:
        raise ValueError(
            f"{path}: the shard's sha256 differs from {manifest_path} (corrupted or truncated "
            f"file); delete {manifest_path} and rerun the caching rule: it recomputes only the "
            "shards that fail their checksum"
        )
    return load_safetensors(data)


def check_manifest(
    manifest: dict,
    manifest_path: Path,
    sentences: list[dict],
    tokenizer=None,
    teacher_sha: str | None = None,
) -> None:
    """Raise ValueError unless the cache was computed on these sentences, with this tokenizer
    and (when given) these teacher weights."""
    expected = {"corpus_hash": sentences_fingerprint(sentences)}
    if tokenizer is not None:
        expected["tokenizer_hash"] = tokenizer_hash(tokenizer)
    if teacher_sha is not None:
        expected["teacher_sha"] = teacher_sha
    for field, value in expected.items():
        if manifest[field] != value:
            raise ValueError(
                f"{manifest_path}: {field} differs (cache {manifest[field]}, expected {value}): "
                f"the cache was computed {_MISMATCH[field]}; delete {Path(manifest_path).parent} "
                "and rerun the caching rule"
            )


def finish_cache(out_dir: Path, manifest: dict, shards: list[dict], total_bytes: int) -> dict:
    manifest["bytes_per_token"] = round(total_bytes / max(manifest["n_tokens"], 1), 3)
    manifest["shards"] = shards
    write_json(manifest, out_dir / "manifest.json")
    return manifest


def build_cache(
    model,
    tokenizer,
    sentences: list[dict],
    out_dir: Path,
    *,
    teacher: str,
    teacher_sha: str,
    shard_size: int,
    max_length: int,
    batch_size: int,
    device: str,
    other_runs: tuple = (),
) -> dict:
    """Write every missing task shard (word-level label logits), then the manifest; return it.

    With `other_runs` (the teacher's other seed runs) the cached logits are those of the runs'
    averaged distribution (`averaged_word_logits`)."""
    out_dir = Path(out_dir)
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    models = [model, *other_runs]
    identity = {
        "teacher": teacher,
        "teacher_sha": teacher_sha,
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "corpus_hash": sentences_fingerprint(sentences),
    }
    for run in models:
        run.eval().to(device)

    def compute(start: int, stop: int) -> dict[str, np.ndarray]:
        logits = averaged_word_logits(
            models, tokenizer, sentences[start:stop], max_length, batch_size, device
        )
        # Only the logits: each sentence's word count comes from the corpus the reader holds
        # (checked by corpus_hash), so the cache costs 2 bytes per label per word.
        return {"logits": np.concatenate(logits).astype(DTYPE)}

    key = shard_key(kind="task", shard_size=shard_size, **identity)
    shards, total_bytes = write_shards(
        out_dir, key, len(sentences), shard_size, compute, f"caching {teacher} logits"
    )
    manifest = task_manifest(identity, labels, sentences, max_length)
    return finish_cache(out_dir, manifest, shards, total_bytes)


def task_manifest(
    identity: dict, labels: list[str], sentences: list[dict], max_length: int | None
) -> dict:
    """The fields of a task cache's manifest (word-level label rows), before its shards."""
    n_words = sum(len(s["words"]) for s in sentences)
    return identity | {
        "kind": "task",
        "level": "word",
        "k": None,
        "dtype": DTYPE,
        "max_length": max_length,
        "labels": labels,
        "mask": None,
        "hidden_layers": [],
        "n_sentences": len(sentences),
        "n_tokens": n_words,
        "shape": [n_words, len(labels)],
    }


def load_cache(
    manifest_path: Path, sentences: list[dict], tokenizer=None, teacher_sha: str | None = None
) -> tuple[dict, list[np.ndarray]]:
    """The task manifest and one float32 [words, labels] array per sentence, after checking
    the corpus, and the tokenizer and teacher weights when given, against the manifest."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if manifest["kind"] != "task":
        raise ValueError(f"{manifest_path}: a {manifest['kind']} cache, not a task cache")
    check_manifest(manifest, manifest_path, sentences, tokenizer, teacher_sha)
    per_sentence = []
    for shard in manifest["shards"]:
        logits = load_shard(manifest_path, shard)["logits"].astype(np.float32)
        chunk = sentences[shard["first_sentence"] : shard["first_sentence"] + shard["sentences"]]
        counts = [len(sentence["words"]) for sentence in chunk]
        if sum(counts) != len(logits):
            raise ValueError(
                f"{manifest_path.parent / shard['file']}: {len(logits)} cached words, the "
                f"corpus has {sum(counts)}; delete the cache folder and rerun"
            )
        per_sentence.extend(split_rows(logits, np.array(counts)))
    return manifest, per_sentence


def cache_teacher_logits(
    config: dict,
    teacher: str,
    teacher_dir: Path,
    corpus_path: Path,
    manifest_path: Path,
    seeds_dir: Path | None = None,
) -> dict:
    """Run the fine-tuned teacher once over the (augmented) corpus, or a task split, and cache
    its logits; given `seeds_dir`, its other seed runs too, averaged with it as one teacher."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    remote = config["trust_remote_code"]
    runs = [Path(teacher_dir), *sorted(Path(seeds_dir).glob("seed-*") if seeds_dir else [])]
    model, *other_runs = [
        AutoModelForTokenClassification.from_pretrained(run, trust_remote_code=remote)
        for run in runs
    ]
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, trust_remote_code=remote)
    sentences = read_sentences(corpus_path, config["max_words_per_sentence"])
    return build_cache(
        model,
        tokenizer,
        sentences,
        Path(manifest_path).parent,
        teacher=teacher,
        teacher_sha="+".join(map(teacher_weights_sha, runs)),
        other_runs=other_runs,
        **caching_settings(config),
    )


def caching_settings(config: dict) -> dict:
    """How a caching job runs the teacher: shard size, sequence length, batch, device."""
    return {
        "shard_size": config["cache"]["shard_size"],
        "max_length": config["max_length"],
        "batch_size": config["cache"]["batch_size"],
        "device": choose_device(config["device"]),
    }


def split_rows(array: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    return np.split(array, np.cumsum(counts)[:-1])
