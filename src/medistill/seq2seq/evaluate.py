"""Evaluation of the seq2seq family: a teacher, a student (mean over its seeds' runs) or the
lead baseline on the task's test pairs and robustness sets, written as one JSON per model for
`medistill.seq2seq.report`.

Scores (`seq2seq.scoring.score_generations`): ROUGE-1/2/L, entity recall and precision,
hallucinated entities per output, exercise answerability. Every seed's run is scored on the
clean test set (mean and std); the kept run also on each robustness set, and it alone is timed:
milliseconds per output at batch 1 on `evaluate.latency_threads` CPU threads, and tokens/s.
Where `generation.restrict_vocabulary` restricts decoding, the kept run also decodes the clean
test set freely (`free_decoding`), so the report shows what the restriction buys.
Outputs stay in the results folder (`*.outputs.jsonl`), never in the logs or MLflow: on real
data they hold patient text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medistill.core.device import choose_device
from medistill.core.energy import track_energy
from medistill.core.io import read_json, read_jsonl, write_json, write_jsonl
from medistill.models.compress import model_disk_mb
from medistill.seq2seq.distill import fp32_parameters, load_seq2seq
from medistill.seq2seq.model import generation_latency
from medistill.seq2seq.scoring import lead_baseline, score_generations
from medistill.seq2seq.training import decoding_vocabulary, generate

SCORES = ("rouge1", "rouge2", "rougeL", "entity_recall", "entity_precision")
SCORES += ("hallucinated_per_output", "answerable")
ROBUSTNESS_SCORES = ("rougeL", "entity_recall", "hallucinated_per_output")
FREE_SCORES = ("rougeL", "entity_recall", "entity_precision", "hallucinated_per_output")


def _mean_and_std(per_seed: list[dict]) -> dict:
    """Each score's mean over the runs, and the standard deviation of ROUGE-L."""
    result = {}
    for key in SCORES:
        values = [s[key] for s in per_seed if s[key] is not None]
        result[key] = float(np.mean(values)) if values else None
    rouge_l = [s["rougeL"] for s in per_seed]
    result["rougeL_std"] = float(np.std(rouge_l, ddof=1)) if len(rouge_l) > 1 else 0.0
    return result


def _seed(model) -> int | None:
    return (getattr(model.config, "medistill_run", None) or {}).get("seed")


def _timed(
    model, tokenizer, sources: list[str], generation: dict, threads: int, vocabulary
) -> dict:
    """Latency of one output at a time on `threads` CPU threads (restored afterwards), decoded
    as the scored outputs were (`vocabulary`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return generation_latency(
            model.cpu(),
            tokenizer,
            sources,
            max_source=generation["max_source"],
            max_new_tokens=generation["max_new_tokens"],
            num_beams=generation["num_beams"],
            vocabulary=vocabulary,
        )
    finally:
        torch.set_num_threads(before)


def evaluate_seq2seq(
    config: dict,
    test_files: dict[str, Path],
    out_path: Path,
    identity: dict,
    log_run: Callable[..., object],
    model_dir: Path | None = None,
    seeds_dir: Path | None = None,
    train_path: Path | None = None,
) -> dict:
    """Score the model in `model_dir` and its other seeds' runs (`seeds_dir/seed-N`), or the
    lead baseline without `model_dir`, on `test_files` (`clean` and the robustness sets);
    write the evaluation JSON to `out_path` with `identity` (family, task, kind, teacher,
    corpus, route, size, role) and log its numbers. A model decodes as
    `generation.restrict_vocabulary` says, from the train pairs in `train_path`."""
    family = config["seq2seq"]
    generation = family["generation"]
    device = choose_device(config["device"])
    test_sets = {name: read_jsonl(path) for name, path in test_files.items()}
    clean = test_sets["clean"]

    if model_dir is None:  # the lead baseline: no model, nothing to time
        n_lead = family["evaluate"]["lead_sentences"]
        outputs = {
            name: [lead_baseline(p["source"], n_lead) for p in pairs]
            for name, pairs in test_sets.items()
        }
        per_seed, seeds = [score_generations(clean, outputs["clean"])], []
        efficiency = {"latency_ms_output": None, "tokens_per_s": None}
        efficiency |= {"params_total": 0, "disk_mb": 0.0}
        energy, kept_outputs, free = {}, outputs, None
    else:
        remote = config["trust_remote_code"]
        runs = [Path(model_dir), *sorted(Path(seeds_dir).glob("seed-*"))]
        train_pairs = read_jsonl(train_path) if train_path else []
        per_seed, seeds = [], []
        with track_energy(config, "inference") as energy:
            for index, run in enumerate(runs):
                model, tokenizer = load_seq2seq(run, remote)
                vocabulary = decoding_vocabulary(tokenizer, generation, train_pairs)
                names = test_sets if index == 0 else {"clean": clean}
                outputs = {
                    name: generate(
                        model,
                        tokenizer,
                        [p["source"] for p in test_sets[name]],
                        generation,
                        device,
                        vocabulary,
                    )
                    for name in names
                }
                if index == 0:
                    kept, kept_tokenizer, kept_outputs = model, tokenizer, outputs
                    kept_vocabulary = vocabulary
                per_seed.append(score_generations(clean, outputs["clean"]))
                seeds.append(_seed(model))
            free = None
            if kept_vocabulary is not None:  # the same run, decoding what it likes
                sources = [p["source"] for p in clean]
                free_outputs = generate(kept, kept_tokenizer, sources, generation, device)
                free = score_generations(clean, free_outputs)
        sources = [p["source"] for p in clean[: family["evaluate"]["latency_outputs"]]]
        threads = config["evaluate"]["latency_threads"]
        efficiency = _timed(kept, kept_tokenizer, sources, generation, threads, kept_vocabulary)
        efficiency["params_total"] = fp32_parameters(model_dir, remote)
        efficiency["disk_mb"] = model_disk_mb(model_dir)
    params = {"generation": generation, "model": str(model_dir)}
    trained = Path(model_dir) / "training_energy.json" if model_dir else None
    return write_evaluation(
        out_path,
        identity,
        per_seed,
        seeds,
        test_sets,
        kept_outputs,
        efficiency | {"energy_kwh_inference": energy.get("energy_kwh")},
        read_json(trained) if trained and trained.exists() else {},
        log_run,
        params,
        free,
    )


def write_evaluation(
    out_path: Path,
    identity: dict,
    per_seed: list[dict],
    seeds: list,
    test_sets: dict[str, list[dict]],
    kept_outputs: dict[str, list[str]],
    efficiency: dict,
    training_energy: dict,
    log_run: Callable[..., object],
    params: dict,
    free: dict | None = None,
) -> dict:
    """The evaluation JSON of one model (its row of the report) and its clean outputs, from
    its runs' clean scores (`per_seed`), the kept run's outputs on each test set, its cost
    (`efficiency`), its training's energy and, for restricted decoding, the kept run's clean
    scores decoded freely (`free`); logged without any text."""
    clean = test_sets["clean"]
    result = identity | {"seeds": seeds} | _mean_and_std(per_seed)
    if seeds:  # the lead baseline and a prompted LLM have no runs
        runs = zip(seeds, per_seed, strict=True)
        result["per_seed"] = [{"seed": s, "rougeL": p["rougeL"]} for s, p in runs]
    result["robustness"] = {
        name: {
            key: score_generations(test_sets[name], kept_outputs[name])[key]
            for key in ROBUSTNESS_SCORES
        }
        for name in kept_outputs
        if name != "clean"
    }
    if free is not None:
        result["free_decoding"] = {key: free[key] for key in FREE_SCORES}
    inference_energy = efficiency.pop("energy_kwh_inference", None)
    result |= efficiency | {"n_test_pairs": len(clean)}
    result["energy_kwh_train"] = training_energy.get("energy_kwh")
    result["co2_kg_train"] = training_energy.get("co2_kg")
    result["energy_kwh_inference"] = inference_energy
    write_json(result, out_path)
    write_jsonl(
        [{"id": p["id"], "output": o} for p, o in zip(clean, kept_outputs["clean"], strict=True)],
        Path(out_path).with_suffix(".outputs.jsonl"),
    )
    names = ("teacher", "task", "corpus", "route", "size")
    log_run(
        "seq2seq/evaluate/" + "/".join(str(identity[k]) for k in names),
        params=params,
        metrics={k: v for k, v in result.items() if isinstance(v, int | float) and v is not None},
        tags={k: str(v) for k, v in identity.items()} | {"stage": "evaluate"},
        artifacts=[Path(out_path)],
    )
    return result
