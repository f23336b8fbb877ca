"""The seq2seq family's training jobs: the teacher fine-tuned on gold pairs, its two caches
(its outputs on the transfer corpus; its top-k next-token distributions along the targets),
students by the three routes of `medistill.seq2seq.training`, and their int8 copies.

Each job reads and writes files only, as the NER jobs do: a teacher or student is a
`save_pretrained` folder that `AutoModelForSeq2SeqLM` (and `pipeline("text2text-generation")`
for hub architectures) opens; the caches are JSON lines and a NumPy archive.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medistill.core.device import choose_device
from medistill.core.hashing import config_hash, file_sha256
from medistill.core.io import atomic_path, read_json, read_jsonl, write_jsonl
from medistill.models.compress import (
    INT8_WEIGHTS,
    compression_kind,
    int8_weight_scales,
    quantize_int8,
    save_int8,
)
from medistill.models.students import count_parameters
from medistill.seq2seq.model import (
    encode_pairs,
    encoder_frozen,
    freeze_whole_encoder,
    shrink,
    teacher_topk,
    warm_started,
    with_encoder_states,
)
from medistill.seq2seq.objective import Seq2SeqObjective
from medistill.seq2seq.tasks import SHRINK_ROUTE
from medistill.seq2seq.training import (
    decoding_vocabulary,
    rouge_dev_score,
    route_examples,
    teacher_pairs,
)
from medistill.training.loop import dev_summary, seed_list, train_seeds

log = logging.getLogger("medistill")


def _family(config: dict) -> tuple[dict, dict]:
    """The seq2seq block, and the config with the family's seed count (`seq2seq.seeds`)."""
    family = config["seq2seq"]
    return family, config | {"seeds": family.get("seeds") or config["seeds"]}


def job_fingerprint(settings: dict, inputs: list[str | Path]) -> str:
    """What a finished seed run was trained from: the job's settings and its input files (a
    folder by its weights and config), so a rerun after an edit or a retrained teacher never
    resumes a run made from the old ones."""
    digests = []
    for path in map(Path, inputs):
        weights = sorted(path.glob("*.safetensors")) + [path / "config.json"]
        files = weights if path.is_dir() else [path]
        digests += [file_sha256(f) for f in files]
    return config_hash({"settings": settings, "inputs": digests})


def load_seq2seq(model_dir: str | Path, trust_remote_code: bool = False):
    """An encoder-decoder folder and its tokenizer, ready for generation: plain folders as
    transformers saved them; int8 ones (`models.compress.save_int8`) rebuilt and quantised."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    model_dir = Path(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    if compression_kind(model.config) is None:
        return model.eval(), tokenizer
    # an int8 folder holds the fp32 weights (its architecture) and the int8 state dict
    quantized = quantize_int8(model, int8_weight_scales(model.config))
    quantized.load_state_dict(torch.load(model_dir / INT8_WEIGHTS, weights_only=True))
    return quantized.eval(), tokenizer


def fp32_parameters(model_dir: str | Path, trust_remote_code: bool = False) -> int:
    """Parameters of a model folder's fp32 weights: an int8 copy counts as many as its
    original (its quantised linear layers hold packed weights, not parameters), as for NER."""
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    return count_parameters(model)["params_total"]


def seq2seq_teacher(base_dir: str | Path, trust_remote_code: bool = False):
    """The teacher before fine-tuning: a prepared encoder-decoder as it is, or a BERT2BERT
    warm-started from a prepared encoder (`seq2seq.warm_started`)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(base_dir, trust_remote_code=trust_remote_code)
    if config.is_encoder_decoder:
        return load_seq2seq(base_dir, trust_remote_code)
    return warm_started(Path(base_dir), trust_remote_code)


def _train(
    config: dict,
    new_model: Callable,
    examples: list[dict],
    recipe: dict,
    objective,
    tokenizer,
    task_dir: Path,
    **paths,
) -> list[dict]:
    """`training.train_seeds` with the family's seeds and dev ROUGE-L (greedy) as dev score;
    a model whose encoder is frozen trains on its encoder's states, computed once (the same
    for every seed: each starts from the same encoder)."""
    family = config["seq2seq"]
    generation = family["generation"]
    dev = read_jsonl(Path(task_dir) / "dev.jsonl")
    train_pairs = read_jsonl(Path(task_dir) / "train.jsonl")
    vocabulary = decoding_vocabulary(tokenizer, generation, train_pairs)
    if family["freeze_encoder"]:  # only then can a model's encoder be frozen
        model = new_model()
        if encoder_frozen(model):
            device = choose_device(config["device"])
            batch_size = generation["batch_size"]
            examples = with_encoder_states(
                model, examples, tokenizer.pad_token_id, batch_size, device
            )
        del model
    return train_seeds(
        config,
        new_model,
        examples,
        recipe,
        objective=objective,
        tokenizer=tokenizer,
        dev_score=rouge_dev_score(generation, tokenizer, dev, config["device"], vocabulary),
        checkpoint=Path(paths["checkpoint"]),
        fingerprint=paths["fingerprint"],
        desc=paths["desc"],
        out_dir=Path(paths["out_dir"]),
        seeds_dir=Path(paths["seeds_dir"]),
    )


def finetune_seq2seq_teacher(
    config: dict,
    teacher: str,
    task: str,
    base_dir: Path,
    task_dir: Path,
    out_dir: Path,
    seeds_dir: Path,
    checkpoint: Path,
    log_run: Callable[..., object],
) -> list[dict]:
    """Fine-tune the teacher on the task's gold train pairs, one run per seed, each kept at its
    best dev ROUGE-L; the best run goes to `out_dir`, the others to `seeds_dir`."""
    family, config = _family(config)
    spec = config["teachers"][teacher]
    recipe = family["finetune"]
    remote = config["trust_remote_code"]
    _, tokenizer = seq2seq_teacher(base_dir, remote)
    generation = family["generation"]
    pairs = read_jsonl(Path(task_dir) / "train.jsonl")
    examples = encode_pairs(
        tokenizer, pairs, generation["max_source"], generation["max_new_tokens"]
    )

    def new_model():
        model, _ = seq2seq_teacher(base_dir, remote)
        model.config.medistill_teacher = {
            "name": teacher,
            "source": spec["source"],
            "licence": spec["licence"],
            "task": task,
        }
        if family["freeze_encoder"]:  # see generative_tagging: the encoder may collapse
            model.get_encoder().requires_grad_(False)
        return model

    runs = _train(
        config,
        new_model,
        examples,
        recipe,
        Seq2SeqObjective(),
        tokenizer,
        task_dir,
        checkpoint=checkpoint,
        fingerprint=job_fingerprint(config, [base_dir, Path(task_dir) / "train.jsonl"]),
        desc=f"fine-tuning {teacher} on {task}",
        out_dir=out_dir,
        seeds_dir=seeds_dir,
    )
    log_run(
        f"seq2seq/finetune/{teacher}/{task}",
        params={"teacher": spec, "seq2seq": family, "seeds": seed_list(config)},
        metrics={k.replace("f1", "rougeL"): v for k, v in dev_summary(runs).items()},
        tags={"stage": "finetune", "family": "seq2seq", "teacher": teacher, "task": task},
        history=read_json(Path(out_dir) / "training_history.json"),
    )
    return runs


def transfer_sources(docs_path: Path, n_docs: int, seed: int) -> list[dict]:
    """A seeded sample of `n_docs` corpus documents (all when fewer), as pair sources."""
    docs = read_jsonl(docs_path)
    chosen = random.Random(seed).sample(range(len(docs)), min(n_docs, len(docs)))
    return [{"id": docs[i]["id"], "source": docs[i]["text"]} for i in sorted(chosen)]


def cache_teacher_outputs(
    config: dict,
    teacher_dir: Path,
    docs_path: Path,
    train_path: Path,
    out_path: Path,
    log_run: Callable,
) -> int:
    """Sequence-level KD targets: the teacher's beam outputs on a sample of the transfer corpus
    (`seq2seq.distill.transfer_docs` documents), decoded as its test outputs are (the train
    pairs in `train_path` give a restricted vocabulary its frequent target tokens), as pairs in
    `out_path` (JSON lines). Returns how many were written (empty outputs are dropped)."""
    family = config["seq2seq"]
    generation = family["generation"]
    model, tokenizer = load_seq2seq(teacher_dir, config["trust_remote_code"])
    vocabulary = decoding_vocabulary(tokenizer, generation, read_jsonl(train_path))
    sources = transfer_sources(docs_path, family["distill"]["transfer_docs"], config["seed"])
    pairs = teacher_pairs(model, tokenizer, sources, generation, config["device"], vocabulary)
    write_jsonl(pairs, out_path)
    log.info("teacher outputs: %d of %d transfer sources", len(pairs), len(sources))
    log_run(
        f"seq2seq/outputs/{Path(teacher_dir).parent.name}/{Path(docs_path).parent.name}",
        params={"generation": generation, "transfer_docs": len(sources)},
        metrics={"outputs": len(pairs), "dropped_empty": len(sources) - len(pairs)},
        tags={"stage": "cache", "family": "seq2seq"},
    )
    return len(pairs)


def distillation_pairs(task_dir: Path, outputs_path: Path | None) -> tuple[list, list]:
    """The gold train pairs, and the teacher's transfer pairs (none without `outputs_path`)."""
    gold = read_jsonl(Path(task_dir) / "train.jsonl")
    return gold, read_jsonl(outputs_path) if outputs_path else []


def cache_teacher_topk(
    config: dict, teacher_dir: Path, task_dir: Path, outputs_path: Path, out_path: Path
) -> int:
    """Word-level KD targets: the teacher's top-k next-token logits (and tail log-sum-exp) at
    each target token of the gold train pairs then the transfer pairs, in that order (what
    `route_examples` pairs them with), stored flat in `out_path` (.npz) with each target's
    length. Returns the number of target tokens."""
    family = config["seq2seq"]
    model, tokenizer = load_seq2seq(teacher_dir, config["trust_remote_code"])
    generation = family["generation"]
    gold, transfer = distillation_pairs(task_dir, outputs_path)
    examples = encode_pairs(
        tokenizer, [*gold, *transfer], generation["max_source"], generation["max_new_tokens"]
    )
    cached = teacher_topk(
        model,
        examples,
        tokenizer.pad_token_id,
        k=family["distill"]["topk"],
        batch_size=generation["batch_size"],
        device=choose_device(config["device"]),
    )
    arrays = {
        key: np.concatenate([c[key] for c in cached])
        for key in ("topk_ids", "topk_logits", "tail_logsumexp")
    }
    arrays["lengths"] = np.array([len(c["topk_ids"]) for c in cached])
    with atomic_path(out_path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return int(arrays["lengths"].sum())


def load_topk(path: Path) -> list[dict]:
    """The per-target arrays of a `cache_teacher_topk` archive, in order."""
    with np.load(path) as archive:
        ends = np.cumsum(archive["lengths"])
        return [
            {
                key: archive[key][end - n : end]
                for key in ("topk_ids", "topk_logits", "tail_logsumexp")
            }
            for n, end in zip(archive["lengths"], ends, strict=True)
        ]


@dataclass(frozen=True)
class Seq2SeqStudentRun:
    """One seq2seq student's job (rule distill_seq2seq_student): its names and the files it
    reads and writes. A `shrink` student reads no cache; `sequence` the teacher's outputs;
    `word` its top-k too."""

    teacher: str
    task: str
    corpus: str
    route: str
    size: str
    teacher_dir: Path
    task_dir: Path
    out_dir: Path
    seeds_dir: Path
    checkpoint: Path
    outputs_path: Path | None = None
    topk_path: Path | None = None

    @property
    def names(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("teacher", "task", "corpus", "route", "size")}

    @property
    def described(self) -> str:
        return "/".join(self.names.values())


def distill_seq2seq_student(
    config: dict, run: Seq2SeqStudentRun, log_run: Callable[..., object]
) -> list[dict]:
    """A student of one route: the teacher's layers its size keeps, trained on the route's
    examples (gold pairs; plus the teacher's outputs on the transfer corpus; plus KL to its
    cached top-k), one run per seed."""
    family, config = _family(config)
    shape, recipe = family["sizes"][run.size], family["distill"]
    teacher, tokenizer = load_seq2seq(run.teacher_dir, config["trust_remote_code"])
    outputs = run.outputs_path if run.route != SHRINK_ROUTE else None
    gold, transfer = distillation_pairs(run.task_dir, outputs)
    topk = load_topk(run.topk_path) if run.route == "word" else ()
    examples, objective = route_examples(
        run.route, tokenizer, gold, family["generation"], transfer, topk
    )
    if run.route == "word":  # the other routes' slices hold no kl_weight: they never read it
        objective.weights["kl_weight"] *= recipe["kl_weight"]

    def new_model():
        student = shrink(teacher, shape["encoder_layers"], shape["decoder_layers"], run.size)
        if family["freeze_encoder"]:
            freeze_whole_encoder(student, teacher)
        student.config.medistill_distillation = {
            key: run.names[key] for key in ("teacher", "corpus", "route", "task")
        } | {"gold_pairs": len(gold), "transfer_pairs": len(transfer)}
        return student

    read = [run.teacher_dir, Path(run.task_dir) / "train.jsonl"]
    runs = _train(
        config,
        new_model,
        examples,
        recipe,
        objective,
        tokenizer,
        run.task_dir,
        checkpoint=run.checkpoint,
        fingerprint=job_fingerprint(
            config | {"names": run.names},
            [*read, *filter(None, (run.outputs_path, run.topk_path))],
        ),
        desc=f"distilling {run.described}",
        out_dir=run.out_dir,
        seeds_dir=run.seeds_dir,
    )
    log_run(
        f"seq2seq/distill/{run.described}",
        params={"seq2seq": family, "seeds": seed_list(config)},
        metrics={k.replace("f1", "rougeL"): v for k, v in dev_summary(runs).items()}
        | {"examples": len(examples)},
        tags={"stage": "distill", "family": "seq2seq"} | run.names,
        history=read_json(Path(run.out_dir) / "training_history.json"),
    )
    return runs


def compress_seq2seq_runs(
    model_dir: Path, seeds_dir: Path, out_dir: Path, out_seeds_dir: Path, remote: bool
) -> None:
    """int8 copies of a student's kept run and of its other seeds' runs."""
    runs = [(Path(model_dir), Path(out_dir))] + [
        (run, Path(out_seeds_dir) / run.name) for run in sorted(Path(seeds_dir).glob("seed-*"))
    ]
    for source, target in runs:
        model, tokenizer = load_seq2seq(source, remote)
        save_int8(model, tokenizer, target)
    energy = Path(model_dir) / "training_energy.json"  # what training the student cost
    if energy.exists():
        shutil.copyfile(energy, Path(out_dir) / energy.name)
    Path(out_seeds_dir).mkdir(parents=True, exist_ok=True)
