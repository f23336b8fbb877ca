"""How close each model runs to what this CPU can do: a roofline of token classifiers.

Usage: python benchmarks/roofline.py --model-dir DIR [--model-dir DIR ...]
           [--sentences TASK.jsonl] [--n-sentences N] [--threads N] [--runs N]

First measures the machine, at `--threads` threads: the fp32 GEMM peak (square float32 matrix
products), the int8 GEMM peak as PyTorch's dynamic int8 `Linear` gives it (the kernel int8
students run on, activation quantisation included), and the memory bandwidth (a large tensor
copied: bytes read + written per second). Then, for each model folder (fp32, int8 or ONNX, as
the evaluation loads it), on `--n-sentences` sentences of a task's test file (`words` per line):

- the FLOPs of its forward pass, counted from its config (the dense projections, 2 x hidden x
  out per token; attention scores and mixing, 4 x sequence x hidden per token and layer; the
  classifier), at batch 1 (each sentence alone) and batch 32 (the sentences padded together);
- its measured time (median over `--runs` repeats), hence achieved GFLOP/s and their share of
  the peak of its arithmetic (int8 models against the int8 peak);
- at batch 1, the bytes of weights a forward reads (parameters x 4 bytes, 1 for int8 layers)
  per second, as a share of the memory bandwidth;
- the fixed cost of a call: the time of a one-word forward (the word and the special tokens)
  over the time of a sentence's.

Printed: one table, and for each model what limits it at batch 1: `overhead` when the one-word
forward takes more than half the sentence's time (the cost of a call whatever its length:
Python and op dispatch, small kernels, the weights read once), else `memory` or `compute`,
whichever share is higher. A measurement, not a test: the exit code is 0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoTokenizer

from medistill.core.encoding import collate, encode_sentences
from medistill.core.io import read_jsonl
from medistill.models.compress import compression_kind, load_for_inference

GEMM_SIZE = 1024


def _median_seconds(call, runs: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine_peaks(runs: int) -> dict[str, float]:
    """fp32 and int8 GEMM GFLOP/s, memory GB/s."""
    n = GEMM_SIZE
    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch.inference_mode():
        fp32 = 2 * n**3 / _median_seconds(lambda: a @ b, runs) / 1e9
        linear = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(torch.nn.Linear(n, n, bias=False)), {torch.nn.Linear}, torch.qint8
        )
        int8 = 2 * n**3 / _median_seconds(lambda: linear(a), runs) / 1e9
    source = torch.empty(64 * 2**20)  # 256 MiB of float32
    target = torch.empty_like(source)
    seconds = _median_seconds(lambda: target.copy_(source), runs)
    return {"fp32": fp32, "int8": int8, "memory": 2 * source.numel() * 4 / seconds / 1e9}


def forward_flops(config, tokens: int, sequence: int) -> float:
    """FLOPs of a BERT-style encoder's forward over `tokens` tokens in rows of `sequence`."""
    hidden, inner = config.hidden_size, config.intermediate_size
    per_layer = 2 * (4 * hidden * hidden + 2 * hidden * inner) + 4 * sequence * hidden
    return tokens * (config.num_hidden_layers * per_layer + 2 * hidden * config.num_labels)


def weight_bytes(config, int8: bool) -> float:
    """Bytes of the weights one forward reads (embeddings: only the rows used, left out)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    dense = config.num_hidden_layers * (4 * hidden * hidden + 2 * hidden * inner)
    return dense * (1 if int8 else 4) + 2 * hidden * config.num_labels * 4


def time_model(folder: Path, sentences: list[dict], runs: int) -> dict:
    config = AutoConfig.from_pretrained(folder)
    model = load_for_inference(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    features = encode_sentences(tokenizer, [*sentences, {"id": "one", "words": ["a"]}], 10**6)
    *singles, one_word = [collate([f], tokenizer.pad_token_id) for f in features]
    batch = collate(features[:-1], tokenizer.pad_token_id)
    kind = compression_kind(config) or "fp32"
    if kind == "onnx" and "quantization" in config.medistill_compression:
        kind = "onnx-int8"  # quantised by ONNX Runtime

    def forward(encoded):
        return lambda: model(
            input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]
        )

    with torch.inference_mode():
        single = [_median_seconds(forward(s), runs) for s in singles]
        batched = _median_seconds(forward(batch), runs)
        fixed = _median_seconds(forward(one_word), runs)
    flops_single = [
        forward_flops(config, s["input_ids"].shape[1], s["input_ids"].shape[1]) for s in singles
    ]
    rows, sequence = batch["input_ids"].shape
    return {
        "model": folder.as_posix(),
        "kind": kind,
        "b1_ms": 1000 * statistics.median(single),
        "b1_gflops": statistics.median(f / t for f, t in zip(flops_single, single, strict=True))
        / 1e9,
        "b32_gflops": forward_flops(config, rows * sequence, sequence) / batched / 1e9,
        "b1_weight_gbs": weight_bytes(config, "int8" in kind) / statistics.median(single) / 1e9,
        "fixed_share": fixed / statistics.median(single),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, action="append", required=True)
    parser.add_argument(
        "--sentences", type=Path, default=Path("results/tasks/ner-synth/test.jsonl")
    )
    parser.add_argument("--n-sentences", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sentences = read_jsonl(args.sentences)[: args.n_sentences]
    peaks = machine_peaks(args.runs)
    print(
        f"machine, {args.threads} thread(s): fp32 GEMM {peaks['fp32']:.1f} GFLOP/s, int8 GEMM "
        f"(torch dynamic) {peaks['int8']:.1f} GFLOP/s, memory copy {peaks['memory']:.1f} GB/s"
    )
    print(
        "| model | kind | ms at batch 1 | GFLOP/s b1 (% of peak) | GFLOP/s b32 (% of peak) "
        "| weights GB/s b1 (% of bandwidth) | one-word call / sentence | limited by (b1) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for folder in args.model_dir:
        row = time_model(folder, sentences, args.runs)
        # int8 models (torch's or ONNX Runtime's) against the int8 GEMM peak torch measured
        peak = peaks["int8"] if "int8" in row["kind"] else peaks["fp32"]
        compute, memory = row["b1_gflops"] / peak, row["b1_weight_gbs"] / peaks["memory"]
        limit = (
            "overhead"
            if row["fixed_share"] > 0.5
            else max(("compute", compute), ("memory", memory), key=lambda item: item[1])[0]
        )
        print(
            f"| {row['model']} | {row['kind']} | {row['b1_ms']:.2f} | {row['b1_gflops']:.1f} "
            f"({compute:.0%}) | {row['b32_gflops']:.1f} ({row['b32_gflops'] / peak:.0%}) "
            f"| {row['b1_weight_gbs']:.1f} ({memory:.0%}) | {row['fixed_share']:.0%} | {limit} |"
        )


if __name__ == "__main__":
    main()
