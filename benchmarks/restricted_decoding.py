"""Does a seq2seq teacher copy entities better when decoding may only write the source's tokens?

Usage: python benchmarks/restricted_decoding.py MODEL_DIR TASK_DIR [--shares 0.5 0.2 ...]
           [--max-source N] [--max-new-tokens N] [--num-beams N] [--lead-sentences N]

MODEL_DIR is a fine-tuned seq2seq folder (e.g. results/seq2seq/teachers/minilm-l6/summary-synth/
model), TASK_DIR its task's pairs (results/seq2seq/tasks/summary-synth: train.jsonl, test.jsonl).
Decodes the test sources freely (`medistill.seq2seq.model.generate_texts`, batch 1), then once per
`--shares` value with the vocabulary restricted, per source, to that source's tokens plus the
tokens found in at least that share of the training targets (`frequent_target_tokens`: the
summaries' own wording, "motif", "traitements", punctuation, and the special tokens): the
summary's entities all come from its report, and a BERT2BERT trained on 2 cores invents
subwords instead of copying them. Printed: ROUGE-1/2/L, entity recall and precision,
hallucinated entities per output (`seq2seq.scoring.score_generations`) for the lead baseline
and each decoding, and one output of each. A measurement: the exit code is 0.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from medistill.core.io import read_jsonl
from medistill.seq2seq.distill import load_seq2seq
from medistill.seq2seq.model import frequent_target_tokens, generate_texts
from medistill.seq2seq.scoring import lead_baseline, score_generations

SHOWN = ("rouge1", "rouge2", "rougeL", "entity_recall", "entity_precision")
SHOWN += ("hallucinated_per_output",)


def show(name: str, pairs: list[dict], outputs: list[str], seconds: float | None) -> None:
    scores = score_generations(pairs, outputs)
    figures = "  ".join(f"{key} {scores[key]:.3f}" for key in SHOWN)
    timing = f"  ({seconds:.0f} s)" if seconds is not None else ""
    print(f"{name}: {figures}{timing}\n  e.g. {outputs[0][:200]}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("task_dir", type=Path)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.2, 0.05])
    parser.add_argument("--max-source", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--num-beams", type=int, default=2)
    parser.add_argument("--lead-sentences", type=int, default=3)
    args = parser.parse_args()
    if any(not 0 < share <= 1 for share in args.shares):
        parser.error(f"--shares: each share is a fraction in (0, 1], got {args.shares}")

    model, tokenizer = load_seq2seq(args.model_dir)
    model.eval()
    targets = [pair["target"] for pair in read_jsonl(args.task_dir / "train.jsonl")]
    test = read_jsonl(args.task_dir / "test.jsonl")
    sources = [pair["source"] for pair in test]
    print(f"{len(test)} test pairs, {len(targets)} training targets, {args.num_beams} beams")
    show("lead baseline", test, [lead_baseline(s, args.lead_sentences) for s in sources], None)
    settings = {"max_source": args.max_source, "max_new_tokens": args.max_new_tokens}
    settings |= {"num_beams": args.num_beams, "batch_size": 1, "device": "cpu"}
    began = time.perf_counter()
    outputs = generate_texts(model, tokenizer, sources, **settings)
    show("free decoding", test, outputs, time.perf_counter() - began)
    for share in args.shares:
        vocabulary = frequent_target_tokens(tokenizer, targets, share)
        began = time.perf_counter()
        outputs = generate_texts(model, tokenizer, sources, **settings, vocabulary=vocabulary)
        name = f"source + tokens of >= {share:.0%} of targets ({len(vocabulary)} ids)"
        show(name, test, outputs, time.perf_counter() - began)


if __name__ == "__main__":
    main()
