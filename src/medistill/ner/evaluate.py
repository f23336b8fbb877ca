"""Evaluate a saved model: its scores on the test and robustness sets over its seeds' runs
(`medistill.ner.scoring`), and what it costs: size, CPU/GPU latency, throughput, memory, energy."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medistill.core.device import choose_device
from medistill.core.encoding import collate, encode_sentences
from medistill.core.energy import track_energy
from medistill.core.io import read_json, read_jsonl, write_json
from medistill.core.significance import paired_bootstrap
from medistill.models.compress import load_for_inference, model_disk_mb
from medistill.models.students import count_parameters
from medistill.ner.scoring import mask_ignored, ner_scores, predict_tags, sentence_counts


@torch.no_grad()
def cpu_latency(model, tokenizer, sentences, runs: int, threads: int) -> dict:
    """Milliseconds per sentence at batch size 1 on CPU (forward only), over `runs` sentences.

    Threads are fixed (and reported) so figures from different machines or jobs compare.
    """
    model.eval().to("cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    features = encode_sentences(tokenizer, sentences[: max(runs, 1)], 10**6)
    inputs = [torch.tensor([f["input_ids"]]) for f in features]
    try:
        for ids in inputs[:5]:  # warm-up: first calls allocate and pick kernels
            model(input_ids=ids)
        times = []
        for i in range(runs):
            ids = inputs[i % len(inputs)]
            start = time.perf_counter()
            model(input_ids=ids)
            times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(previous)
    return {
        "latency_ms_b1": statistics.median(times),
        "latency_ms_b1_p95": float(np.percentile(times, 95)),
        "latency_threads": threads,
        "latency_mean_words": float(np.mean([len(s["words"]) for s in sentences[:runs]])),
    }


@torch.no_grad()
def cpu_throughput(model, tokenizer, sentences, threads: int, batch_size: int = 32) -> dict:
    """Real (non-padding) tokens per second at batch size 32 on CPU, threads fixed."""
    model.eval().to("cpu")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    features = encode_sentences(tokenizer, sentences[: 4 * batch_size], 10**6)
    batches = [
        collate(features[i : i + batch_size], tokenizer.pad_token_id)
        for i in range(0, len(features), batch_size)
    ]
    try:
        model(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
        start, tokens = time.perf_counter(), 0
        for batch in batches:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            tokens += int(batch["attention_mask"].sum())
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return {"throughput_b32_tokens_s": tokens / elapsed}


def peak_rss_mb() -> float:
    """The evaluation process's peak resident memory (Linux reports KiB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def score_test_sets(model, tokenizer, test_sets: dict[str, list[dict]], settings: dict) -> dict:
    """F1 on each test set: micro/macro F1, per type and per-sentence counts (`sentence_counts`)
    for "clean", `f1_<name>` otherwise."""
    result = {}
    for name, sentences in test_sets.items():
        predicted = predict_tags(
            model,
            tokenizer,
            sentences,
            settings["max_length"],
            settings["batch_size"],
            settings["device"],
        )
        gold = [s["tags"] for s in sentences]
        if any("ignore" in s for s in sentences):
            gold, predicted = mask_ignored(sentences, predicted)
        scores = ner_scores(gold, predicted)
        if name == "clean":
            result.update(scores)
            result["sentence_counts"] = sentence_counts(gold, predicted)
        else:
            result[f"f1_{name}"] = scores["f1"]
    return result


def over_seeds(per_seed: list[dict], seeds: list[int]) -> dict:
    """Scores of several runs: each scalar score's mean over the runs, `f1_std` (sample
    standard deviation, 0 for one run), `f1_per_seed`; per-type scores stay the kept run's
    (the first)."""
    result = dict(per_seed[0])
    for key, value in per_seed[0].items():
        if isinstance(value, float):
            result[key] = float(np.mean([scores[key] for scores in per_seed]))
    f1s = [scores["f1"] for scores in per_seed]
    result["f1_std"] = float(np.std(f1s, ddof=1)) if len(f1s) > 1 else 0.0
    result["f1_per_seed"] = f1s
    result["seeds"] = seeds
    return result


def efficiency(model, tokenizer, sentences: list[dict], settings: dict) -> dict:
    """Size, CPU latency at batch 1 and throughput at batch 32 (threads fixed), and GPU
    latency where a GPU is present."""
    result = count_parameters(model)
    threads = settings["latency_threads"]
    result.update(cpu_latency(model, tokenizer, sentences, settings["latency_runs"], threads))
    result.update(cpu_throughput(model, tokenizer, sentences, threads))
    if torch.cuda.is_available() and settings["device"] == "cuda":
        result.update(gpu_latency(model, tokenizer, sentences, settings["latency_runs"]))
    return result


@torch.no_grad()
def gpu_latency(model, tokenizer, sentences, runs: int) -> dict:
    """Milliseconds per sentence at batch size 1 on the GPU, timed with CUDA events."""
    model.eval().to("cuda")
    features = encode_sentences(tokenizer, sentences[: max(runs, 1)], 10**6)
    inputs = [torch.tensor([f["input_ids"]], device="cuda") for f in features]
    for ids in inputs[:5]:
        model(input_ids=ids)
    times = []
    for i in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        model(input_ids=inputs[i % len(inputs)])
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return {
        "gpu_latency_ms_b1": statistics.median(times),
        "gpu_latency_ms_b1_p95": float(np.percentile(times, 95)),
        "gpu_name": torch.cuda.get_device_name(),
    }


def _seed(model) -> int | None:
    return (getattr(model.config, "medistill_run", None) or {}).get("seed")


def _energy_keys(measured: dict, stage: str) -> dict:
    """Flat eval-JSON keys of a stage's energy (`energy_kwh_train`, `co2_kg_train`, ...)."""
    keys = {f"{k}_{stage}": measured[k] for k in ("energy_kwh", "co2_kg") if k in measured}
    if "duration_s" in measured:
        keys[f"{stage}_duration_s"] = measured["duration_s"]
    if "country" in measured:
        keys["energy_country"] = measured["country"]
    return keys


def baseline_comparison(
    counts: list[np.ndarray], baseline: list[np.ndarray], sentences: list[dict], seed: int
) -> dict:
    """A model against its gold-only baseline on the same test sentences (`scoring.
    paired_bootstrap`): test documents and both models' seed runs resampled, where the
    sentences name their document (`doc`), else sentences and seeds; `f1_vs_baseline`, its
    one-sided 95% lower bound `f1_vs_baseline_lower` and `p_vs_baseline` (one-sided: no better
    than the baseline), the unit resampled and the runs compared. The bootstrap over sentences
    alone, runs fixed (this project's test until December 2026), stays beside it as
    `*_sentences`, for comparison."""
    documents = [s.get("doc") for s in sentences]
    clusters = documents if all(d is not None for d in documents) else None
    test = paired_bootstrap(counts, baseline, clusters, seed=seed)
    by_sentence = paired_bootstrap(counts, baseline, seed=seed, resample_seeds=False)
    return {
        "f1_vs_baseline": test["delta"],
        "f1_vs_baseline_lower": test["lower"],
        "p_vs_baseline": test["p"],
        "bootstrap_unit": test["unit"],
        "bootstrap_units": test["units"],
        "bootstrap_runs": test["runs"],
        "f1_vs_baseline_lower_sentences": by_sentence["lower"],
        "p_vs_baseline_sentences": by_sentence["p"],
    }


def evaluate_to_json(
    config: dict,
    model_dir: Path,
    seeds_dir: Path,
    test_files: dict[str, Path],
    out_path: Path,
    identity: dict,
    log_run: Callable[..., object],
    counts_path: Path,
    baseline_counts_path: Path | None = None,
) -> dict:
    """Evaluate a saved model and its other seeds' runs on the task's test files (scores: mean
    over the runs; efficiency: the kept model's); write the eval JSON and log it.

    `counts_path` gets each run's per-sentence counts on the clean test set; given its
    baseline's (`baseline_counts_path`), the comparison with it (`baseline_comparison`)."""
    from transformers import AutoTokenizer

    remote = config["trust_remote_code"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=remote)
    settings = config["evaluate"] | {
        "max_length": config["max_length"],
        "device": choose_device(config["device"]),
    }
    test_sets = {name: read_jsonl(path) for name, path in test_files.items()}
    kept = load_for_inference(model_dir, trust_remote_code=remote)
    with track_energy(config, "inference") as inference:  # the kept model on every test set
        per_seed = [score_test_sets(kept, tokenizer, test_sets, settings)]
    seeds = [_seed(kept)]
    for run in sorted(Path(seeds_dir).glob("seed-*")):
        model = load_for_inference(run, trust_remote_code=remote)
        per_seed.append(score_test_sets(model, tokenizer, test_sets, settings))
        seeds.append(_seed(model))
    model = kept
    counts = [scores.pop("sentence_counts") for scores in per_seed]
    write_json([c.tolist() for c in counts], counts_path)
    result = identity | over_seeds(per_seed, seeds)
    if baseline_counts_path:
        baseline = [np.asarray(c) for c in read_json(baseline_counts_path)]
        result |= baseline_comparison(counts, baseline, test_sets["clean"], config["seed"])
    result.update(_energy_keys(inference, "inference"))
    train_energy = Path(model_dir) / "training_energy.json"
    if train_energy.exists():
        result.update(_energy_keys(read_json(train_energy), "train"))
    result.update(efficiency(model, tokenizer, test_sets["clean"], settings))
    result["disk_mb"] = model_disk_mb(model_dir)
    result["peak_rss_mb"] = peak_rss_mb()
    result["n_test_sentences"] = len(test_sets["clean"])
    student = getattr(model.config, "medistill_student", None)
    if student:
        compression = getattr(model.config, "medistill_compression", None)
        result["student"] = student | {"compression": (compression or {}).get("kind", "none")}
    write_json(result, out_path)
    run = "/".join(str(identity[k]) for k in ("teacher", "corpus", "size", "task"))
    log_run(
        f"evaluate/{run}",
        params={"evaluate": config["evaluate"], "model": str(model_dir)},
        metrics={k: v for k, v in result.items() if isinstance(v, int | float)},
        tags={k: str(v) for k, v in identity.items()} | {"stage": "evaluate"},
        artifacts=[Path(out_path)],
    )
    return result
