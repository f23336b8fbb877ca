"""Score a token-classification model: entity-level F1 (seqeval, strict IOB2), size, CPU latency."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import torch
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2

from medistill.students import count_parameters
from medistill.tasks import collate, encode_sentences, tag_spans


@torch.no_grad()
def predict_tags(model, tokenizer, sentences, max_length, batch_size, device) -> list[list[str]]:
    """The label of each word's first sub-token, argmax over the model's labels."""
    model.eval().to(device)
    features = encode_sentences(tokenizer, sentences, max_length)
    predictions = []
    for start in range(0, len(features), batch_size):
        batch = collate(features[start : start + batch_size], tokenizer.pad_token_id)
        logits = (
            model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            )
            .logits.argmax(-1)
            .cpu()
        )
        for row in range(logits.shape[0]):
            ids = logits[row][batch["word_index"][row] >= 0].tolist()
            predictions.append([model.config.id2label[i] for i in ids])
    return predictions


def ner_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict:
    """Micro and macro entity F1 and per-type precision/recall/F1, strict IOB2 matching."""
    report = classification_report(
        gold, predicted, mode="strict", scheme=IOB2, output_dict=True, zero_division=0
    )
    per_type = {
        name: {k: float(v) for k, v in row.items() if k != "support"}
        | {"support": int(row["support"])}
        for name, row in report.items()
        if not name.endswith(" avg")
    }
    return {
        "f1": float(f1_score(gold, predicted, mode="strict", scheme=IOB2, zero_division=0)),
        "f1_macro": float(report["macro avg"]["f1-score"]),
        "precision": float(report["micro avg"]["precision"]),
        "recall": float(report["micro avg"]["recall"]),
        "per_type": per_type,
    }


def mask_ignored(sentences: list[dict], predicted: list[list[str]]):
    """Gold and predicted tags without the mentions that touch a sentence's `ignore` words.

    Gold: ignored words become `O` (they are whole gold mentions). Predictions: every predicted
    mention (a B-X or stray I-X and the I-X after it) with an ignored word becomes `O`, so a
    prediction of a masked gold mention counts neither as a hit nor as a false positive.
    """
    gold_out, predicted_out = [], []
    for sentence, tags in zip(sentences, predicted, strict=True):
        ignore = sentence.get("ignore") or [False] * len(tags)
        gold_out.append(
            ["O" if skip else t for t, skip in zip(sentence["tags"], ignore, strict=True)]
        )
        tags = list(tags)
        for i, end in tag_spans(tags):
            if any(ignore[i:end]):
                tags[i:end] = ["O"] * (end - i)
        predicted_out.append(tags)
    return gold_out, predicted_out


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


def evaluate_model(model, tokenizer, test_sets: dict[str, list[dict]], settings: dict) -> dict:
    """F1 on each test set (`f1` for "clean", `f1_<name>` otherwise), size and latency."""
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
        else:
            result[f"f1_{name}"] = scores["f1"]
    result.update(count_parameters(model))
    result.update(
        cpu_latency(
            model,
            tokenizer,
            test_sets["clean"],
            settings["latency_runs"],
            settings["latency_threads"],
        )
    )
    result.update(cpu_throughput(model, tokenizer, test_sets["clean"], settings["latency_threads"]))
    return result


def evaluate_to_json(
    config: dict, model_dir: Path, test_files: dict[str, Path], out_path: Path, identity: dict
) -> dict:
    """Evaluate a saved model on the task's test files; write the eval JSON and log it."""
    from transformers import AutoTokenizer

    from medistill.compress import load_for_inference, model_disk_mb
    from medistill.corpus import read_jsonl
    from medistill.distill import choose_device
    from medistill.io import write_json
    from medistill.tracking import log_run

    remote = config["trust_remote_code"]
    model = load_for_inference(model_dir, trust_remote_code=remote)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=remote)
    settings = config["evaluate"] | {
        "max_length": config["max_length"],
        "device": choose_device(config["device"]),
    }
    test_sets = {name: read_jsonl(path) for name, path in test_files.items()}
    result = identity | evaluate_model(model, tokenizer, test_sets, settings)
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
        config,
        f"evaluate/{run}",
        params={"evaluate": config["evaluate"], "model": str(model_dir)},
        metrics={k: v for k, v in result.items() if k not in ("per_type", "student")},
        tags={k: str(v) for k, v in identity.items()} | {"stage": "evaluate"},
        artifacts=[Path(out_path)],
    )
    return result
