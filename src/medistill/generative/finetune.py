"""Fine-tuning a generative tagger on the task's train split (`finetuned`: an encoder-decoder;
`finetuned-llm`: a causal LM's top blocks, answer-only loss), its seeds run and kept like a
teacher's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from medistill.core.device import choose_device
from medistill.core.io import read_json, read_jsonl
from medistill.generative.objective import CausalAnswerObjective
from medistill.generative.outputs import (
    causal_examples,
    causal_outputs,
    causal_source,
    sentence_pairs,
    seq2seq_outputs,
    tag_outputs,
    task_entity_types,
    train_top_blocks,
)
from medistill.ner.scoring import ner_scores
from medistill.seq2seq.distill import job_fingerprint
from medistill.seq2seq.model import encode_pairs, warm_started
from medistill.seq2seq.objective import Seq2SeqObjective
from medistill.training.loop import train_seeds


def finetune_generative_tagger(
    config: dict,
    tagger: str,
    base_dir: Path | None,
    task_dir: Path,
    out_dir: Path,
    seeds_dir: Path,
    checkpoint: Path,
    log_run: Callable[..., object],
    allow_network: bool = False,
) -> list[dict]:
    """Fine-tune a `finetuned` tagger (a BERT2BERT warm-started from `base_dir`, a prepared
    teacher) or a `finetuned-llm` one (the causal LM of its `source`) on the task's train
    sentences, one run per seed, each kept at its best dev F1 (its outputs parsed and scored
    like any tagger's); a killed run resumes from its checkpoint when the settings and input
    files are unchanged."""
    family = config["generative"]
    spec = family["taggers"][tagger]
    generation = family["generation"]
    device = choose_device(config["device"])
    train = read_jsonl(Path(task_dir) / "train.jsonl")
    dev = read_jsonl(Path(task_dir) / "dev.jsonl")
    entity_types = task_entity_types(task_dir)
    remote = config["trust_remote_code"]

    if spec["kind"] == "finetuned-llm":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder, gguf_file = causal_source(spec["source"], allow_network)
        load = gguf_file | {"dtype": torch.float32}  # trained in float32, whatever is stored
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote, **gguf_file)
        examples = causal_examples(tokenizer, train, generation["max_new_tokens"])
        objective, inputs = CausalAnswerObjective(), []

        def load_model():
            model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=remote, **load)
            if gguf_file:  # read dequantised, but transformers keeps the GGUF quantizer, and
                # with it refuses to save the model: its weights are plain float32 tensors
                model.hf_quantizer = None
                del model.config.quantization_config
            where = f"generative.taggers.{tagger}"
            train_top_blocks(model, spec.get("train_layers"), where)
            return model

        def outputs(model, sentences):
            return causal_outputs(model, tokenizer, sentences, generation, device, None)
    else:
        _, tokenizer = warm_started(Path(base_dir), remote)
        pairs = sentence_pairs(train)
        max_source, max_target = generation["max_source"], generation["max_new_tokens"]
        examples = encode_pairs(tokenizer, pairs, max_source, max_target)
        objective, inputs = Seq2SeqObjective(), [base_dir]

        def load_model():
            model, _ = warm_started(Path(base_dir), remote)
            # Trained end to end, the encoder learns to output one vector for every sentence
            # (measured: last-layer outputs identical across sentences after 500 steps)
            # before the fresh cross-attention can use it; frozen, it keeps its pretrained
            # token states.
            if spec["freeze_encoder"]:
                model.encoder.requires_grad_(False)
            return model

        def outputs(model, sentences):
            return seq2seq_outputs(model, tokenizer, sentences, generation, device)

    if tokenizer.pad_token_id is None:  # many causal LMs have none: pad with the end token
        tokenizer.pad_token = tokenizer.eos_token

    def dev_score(model) -> float:
        tags, _ = tag_outputs(outputs(model, dev), dev, entity_types)
        return ner_scores([s["tags"] for s in dev], tags)["f1"]

    def new_model():
        model = load_model()
        model.config.medistill_tagger = {"name": tagger} | spec
        return model

    runs = train_seeds(
        config,
        new_model,
        examples,
        spec["finetune"],
        objective=objective,
        tokenizer=tokenizer,
        dev_score=dev_score,
        checkpoint=Path(checkpoint),
        fingerprint=job_fingerprint(config, [*inputs, Path(task_dir) / "train.jsonl"]),
        desc=f"fine-tuning the generative tagger {tagger}",
        out_dir=Path(out_dir),
        seeds_dir=Path(seeds_dir),
    )
    log_run(
        f"generative/finetune/{tagger}",
        params={"tagger": spec, "generative": family},
        metrics={"best_dev_f1": max(r["dev_f1"] for r in runs)},
        tags={"stage": "finetune", "family": "generative", "tagger": tagger},
        history=read_json(Path(out_dir) / "training_history.json"),
    )
    return runs
