"""The teacher's word-level label logits over a corpus, computed once and shared by students.

Layout of a cache folder:
    shard-KEY-00000.safetensors ...  `logits` [words, labels] float16,
                                     `word_counts` [sentences] int32
    manifest.json                    teacher, tokenizer, labels, shapes, dtype, shards (last)
Shards are written atomically and skipped when already present, so a killed caching job resumes
where it stopped. The manifest is the declared output: it exists only once every shard does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from medistill.io import atomic_path, file_sha256, read_json, write_json
from medistill.tasks import collate, encode_sentences

DTYPE = "float16"


def sentences_fingerprint(sentences: list[dict]) -> str:
    """Ties a cache to the exact word sequence it was computed on."""
    digest = hashlib.sha256()
    for sentence in sentences:
        digest.update(json.dumps(sentence["words"], ensure_ascii=False).encode())
    return digest.hexdigest()[:16]


@torch.no_grad()
def word_logits(model, tokenizer, sentences, max_length, batch_size, device) -> list[np.ndarray]:
    """One [words, labels] array per sentence, read at each word's first sub-token."""
    features = encode_sentences(tokenizer, sentences, max_length)
    out = []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start : start + batch_size], tokenizer.pad_token_id)
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        ).logits.float()
        for row in range(logits.shape[0]):
            positions = (batch["word_index"][row] >= 0).nonzero().squeeze(1)
            out.append(logits[row, positions.to(device)].cpu().numpy())
    return out


def _save_shard(path: Path, logits: list[np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        save_file(
            {
                "logits": np.concatenate(logits).astype(DTYPE),
                "word_counts": np.array([len(x) for x in logits], dtype=np.int32),
            },
            str(tmp),
        )


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
) -> dict:
    """Write every missing shard, then the manifest; return the manifest.

    Shard names carry a key of the teacher weights, the sentences and the shard size, so a
    resumed job only reuses shards computed by the same teacher on the same text.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(
        f"{teacher_sha}:{sentences_fingerprint(sentences)}:{shard_size}".encode()
    ).hexdigest()[:10]
    for stale in out_dir.glob("shard-*.safetensors"):
        if not stale.name.startswith(f"shard-{key}-"):
            stale.unlink()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    model.eval().to(device)
    shards = []
    starts = range(0, len(sentences), shard_size)
    for index, start in enumerate(tqdm(starts, desc=f"caching {teacher} logits", unit="shard")):
        path = out_dir / f"shard-{key}-{index:05d}.safetensors"
        chunk = sentences[start : start + shard_size]
        if not path.exists():
            _save_shard(path, word_logits(model, tokenizer, chunk, max_length, batch_size, device))
        shards.append({"file": path.name, "first_sentence": start, "sentences": len(chunk)})
    manifest = {
        "teacher": teacher,
        "teacher_sha": teacher_sha,
        "tokenizer": tokenizer.name_or_path,
        "labels": labels,
        "dtype": DTYPE,
        "level": "word",
        "n_sentences": len(sentences),
        "n_words": sum(len(s["words"]) for s in sentences),
        "shape": [sum(len(s["words"]) for s in sentences), len(labels)],
        "sentences_sha": sentences_fingerprint(sentences),
        "shards": shards,
    }
    write_json(manifest, out_dir / "manifest.json")
    return manifest


def load_cache(manifest_path: Path, sentences: list[dict]) -> tuple[dict, list[np.ndarray]]:
    """The manifest and one float32 [words, labels] array per sentence, checked against them."""
    manifest_path = Path(manifest_path)
    manifest = read_json(manifest_path)
    if manifest["sentences_sha"] != sentences_fingerprint(sentences):
        raise ValueError(
            f"{manifest_path}: the cache was computed on other sentences than the corpus given; "
            "delete the cache folder and rerun cache_teacher_logits"
        )
    per_sentence = []
    for shard in manifest["shards"]:
        arrays = load_file(str(manifest_path.parent / shard["file"]))
        bounds = np.cumsum(np.concatenate([[0], arrays["word_counts"]]))
        logits = arrays["logits"].astype(np.float32)
        per_sentence.extend(logits[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    return manifest, per_sentence


def cache_teacher_logits(
    config: dict, teacher: str, teacher_dir: Path, corpus_path: Path, manifest_path: Path
) -> dict:
    """Run the fine-tuned teacher once over the (augmented) corpus and cache its logits."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from medistill.corpus import read_jsonl
    from medistill.distill import choose_device
    from medistill.tasks import documents_to_sentences

    remote = config["trust_remote_code"]
    model = AutoModelForTokenClassification.from_pretrained(teacher_dir, trust_remote_code=remote)
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir, trust_remote_code=remote)
    sentences = documents_to_sentences(read_jsonl(corpus_path), config["max_words_per_sentence"])
    return build_cache(
        model,
        tokenizer,
        sentences,
        Path(manifest_path).parent,
        teacher=teacher,
        teacher_sha=hashlib.sha256(
            "".join(map(file_sha256, sorted(Path(teacher_dir).glob("*.safetensors")))).encode()
        ).hexdigest()[:16],
        shard_size=config["cache"]["shard_size"],
        max_length=config["max_length"],
        batch_size=config["cache"]["batch_size"],
        device=choose_device(config["device"]),
    )
