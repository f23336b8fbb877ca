"""A prompted instruction LLM as a teacher of the seq2seq family (`seq2seq.llm_teachers`): it
writes each report's summary or exercise from a French instruction and a few gold pairs of the
train split (`seq2seq.prompts`), greedily, on llama.cpp or transformers (`llm_engines`: the
instruction and examples are computed once and reused for every report).

Its outputs on a sample of a transfer corpus are cached with their provenance (the model's
weights hash, the prompt's hash, the decoding settings) as the sequence-level KD targets of
students shrunk from a fine-tuned BERT2BERT (the entry's `init`); its outputs on the test
reports make its row of the report, scored and timed like every other model's. Neither the
reports nor the outputs reach the logs or MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medistill.core.energy import track_energy
from medistill.core.errors import ConfigError
from medistill.core.hashing import file_sha256
from medistill.core.io import read_jsonl, write_json, write_jsonl
from medistill.models.compress import model_disk_mb
from medistill.models.llm_engines import LlamaCppEngine, TransformersEngine, common_prefix
from medistill.models.packaged_gguf import gguf_parameters, gguf_source
from medistill.models.teachers import fetch_teacher
from medistill.seq2seq.distill import transfer_sources
from medistill.seq2seq.evaluate import write_evaluation
from medistill.seq2seq.prompts import chat_messages, few_shot_pairs
from medistill.seq2seq.scoring import score_generations

log = logging.getLogger("medistill")
# Tokens kept free for a report after the instruction, the examples and the answer.
MIN_REPORT_TOKENS = 64


@dataclass
class LlmWriter:
    """A loaded LLM teacher: `write(sources)` gives its outputs; `info` what the row and the
    cache's provenance say of it (weights hash, parameters, size on disk, engine)."""

    engine: LlamaCppEngine | TransformersEngine
    tokenizer: object
    kind: str
    examples: list[dict]
    context: int
    max_new_tokens: int
    info: dict = field(default_factory=dict)
    truncated: int = 0

    def prompt(self, source: str) -> list[int]:
        text = self.tokenizer.apply_chat_template(
            chat_messages(self.kind, source, self.examples),
            tokenize=False,
            add_generation_prompt=True,
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def fitted(self, source: str) -> str:
        """`source` cut (in tokens) so that its prompt and the answer fit the context window."""
        room = self.context - len(self.prompt("")) - self.max_new_tokens
        ids = self.tokenizer(source, add_special_tokens=False)["input_ids"]
        if len(ids) <= room:
            return source
        self.truncated += 1
        return self.tokenizer.decode(ids[:room])

    def write(self, sources: Sequence[str], device: str = "cpu") -> list[str]:
        return self.engine.complete([self.prompt(self.fitted(s)) for s in sources], device)

    def set_threads(self, threads: int) -> None:
        if isinstance(self.engine, LlamaCppEngine):
            self.engine.set_threads(threads)
        else:
            torch.set_num_threads(threads)


def load_llm_writer(
    name: str, spec: dict, kind: str, train: Sequence[dict], config: dict, allow_network: bool
) -> LlmWriter:
    """The LLM teacher `name` (its `seq2seq.llm_teachers` entry `spec`) for a task of `kind`,
    its examples drawn from the `train` pairs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = f"seq2seq.llm_teachers.{name}"
    remote = config["trust_remote_code"]
    gguf = gguf_source(spec["source"])
    folder = gguf.parent if gguf else fetch_teacher(spec["source"], allow_network)
    gguf_file = {"gguf_file": gguf.name} if gguf else {}
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote, **gguf_file)
    if not tokenizer.chat_template:
        raise ConfigError(
            f"{where}.source: {spec['source']} has no chat template; an LLM teacher follows "
            "instructions: use an instruction (chat) model"
        )
    examples = few_shot_pairs(train, spec["shots"], config["seed"])
    writer = LlmWriter(None, tokenizer, kind, examples, spec["context"], spec["max_new_tokens"])
    room = spec["context"] - len(writer.prompt("")) - spec["max_new_tokens"]
    if room < MIN_REPORT_TOKENS:
        raise ConfigError(
            f"{where}: the instruction and {len(examples)} examples leave {room} tokens of its "
            f"context ({spec['context']}) for a report; lower shots or raise context"
        )
    if spec["engine"] == "llama-cpp":
        if gguf is None:
            raise ConfigError(f"{where}: engine llama-cpp needs a GGUF source; use transformers")
        threads = torch.get_num_threads()
        writer.engine = LlamaCppEngine(gguf, spec["context"], threads, spec["max_new_tokens"])
        total, _ = gguf_parameters(gguf)
    else:
        load = gguf_file | {"dtype": torch.float32 if gguf else "auto"}
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=remote, **load)
        prefix = common_prefix(writer.prompt("a"), writer.prompt("b"))
        writer.engine = TransformersEngine(model, tokenizer, prefix, spec["max_new_tokens"])
        total = sum(p.numel() for p in model.parameters())
    weights = [gguf] if gguf else sorted(Path(folder).glob("*.safetensors"))
    writer.info = {
        "engine": spec["engine"],
        "params_total": int(total),
        "disk_mb": gguf.stat().st_size / 2**20 if gguf else model_disk_mb(folder),
        "weights_sha": hashlib.sha256(
            "".join(file_sha256(path) for path in weights).encode()
        ).hexdigest()[:16],
    }
    return writer


def prompt_sha(writer: LlmWriter) -> str:
    """What the LLM was asked, up to the report: instruction, examples and chat template."""
    return hashlib.sha256(json.dumps(writer.prompt("")).encode()).hexdigest()[:16]


def cache_llm_outputs(
    config: dict,
    teacher: str,
    task: str,
    train_path: Path,
    docs_path: Path,
    out_path: Path,
    provenance_path: Path,
    log_run: Callable[..., object],
    allow_network: bool = False,
) -> int:
    """The LLM teacher's outputs on `seq2seq.distill.transfer_docs` documents of the corpus in
    `docs_path` (a seeded sample, as for a fine-tuned teacher), as pairs in `out_path`, and
    their provenance in `provenance_path`. Returns how many were written (empty ones are
    dropped: they teach nothing)."""
    family = config["seq2seq"]
    spec = family["llm_teachers"][teacher]
    writer = load_llm_writer(
        teacher, spec, family["tasks"][task]["kind"], read_jsonl(train_path), config, allow_network
    )
    sources = transfer_sources(docs_path, family["distill"]["transfer_docs"], config["seed"])
    began = time.perf_counter()
    outputs = writer.write([s["source"] for s in sources])
    pairs = [
        {"id": s["id"], "source": s["source"], "target": output}
        for s, output in zip(sources, outputs, strict=True)
        if output
    ]
    write_jsonl(pairs, out_path)
    provenance = writer.info | {
        "teacher": teacher,
        "source": spec["source"],
        "prompt_sha": prompt_sha(writer),
        "shots": len(writer.examples),
        "context": spec["context"],
        "max_new_tokens": spec["max_new_tokens"],
        "transfer_docs": len(sources),
        "outputs": len(pairs),
        "truncated_sources": writer.truncated,
        "seconds": round(time.perf_counter() - began, 1),
        "tokens_per_s": round(writer.engine.stats.tokens_per_s(), 2),
    }
    write_json(provenance, provenance_path)
    log.info("LLM outputs: %d of %d transfer sources", len(pairs), len(sources))
    log_run(
        f"seq2seq/llm-outputs/{teacher}/{task}/{Path(docs_path).parent.name}",
        params={"llm_teacher": spec},
        metrics={k: provenance[k] for k in ("outputs", "truncated_sources", "tokens_per_s")},
        tags={"stage": "cache", "family": "seq2seq", "teacher": teacher, "task": task},
    )
    return len(pairs)


def llm_latency(writer: LlmWriter, sources: Sequence[str], threads: int) -> dict:
    """Milliseconds per output at batch 1 on `threads` threads (median over `sources`, after
    one warm-up), with the instruction and examples already computed (a deployed prompt's
    fixed part), and generated tokens per second."""
    before = torch.get_num_threads()
    writer.set_threads(threads)
    timings, stats = [], writer.engine.stats
    tokens_before, seconds_before = stats.tokens, stats.seconds
    try:
        for index, source in enumerate([sources[0], *sources]):
            began = time.perf_counter()
            writer.write([source])
            if index == 0:  # the warm-up
                tokens_before, seconds_before = stats.tokens, stats.seconds
            else:
                timings.append(time.perf_counter() - began)
    finally:
        writer.set_threads(before)
        torch.set_num_threads(before)
    seconds = stats.seconds - seconds_before
    return {
        "latency_ms_output": float(np.median(timings) * 1000),
        "tokens_per_s": (stats.tokens - tokens_before) / seconds if seconds else 0.0,
    }


def evaluate_llm_teacher(
    config: dict,
    teacher: str,
    test_files: dict[str, Path],
    train_path: Path,
    out_path: Path,
    identity: dict,
    log_run: Callable[..., object],
    allow_network: bool = False,
) -> dict:
    """The LLM teacher's row: its outputs on the clean test reports (and the entry's
    `robustness_sets`) scored like every model's, timed at batch 1 on
    `evaluate.latency_threads` threads, in the evaluation JSON's shape."""
    family = config["seq2seq"]
    spec = family["llm_teachers"][teacher]
    writer = load_llm_writer(
        teacher, spec, identity["kind"], read_jsonl(train_path), config, allow_network
    )
    names = ["clean", *spec["robustness_sets"]]
    test_sets = {name: read_jsonl(test_files[name]) for name in names}
    with track_energy(config, "inference") as energy:
        outputs = {name: writer.write([p["source"] for p in test_sets[name]]) for name in names}
    clean = test_sets["clean"]
    sources = [p["source"] for p in clean[: family["evaluate"]["latency_outputs"]]]
    efficiency = llm_latency(writer, sources, config["evaluate"]["latency_threads"])
    efficiency |= {k: writer.info[k] for k in ("params_total", "disk_mb")}
    efficiency["energy_kwh_inference"] = energy.get("energy_kwh")
    params = {"llm_teacher": spec, "prompt_sha": prompt_sha(writer)}
    return write_evaluation(
        out_path,
        identity | {"engine": spec["engine"], "truncated_sources": writer.truncated},
        [score_generations(clean, outputs["clean"])],
        [],
        test_sets,
        outputs,
        efficiency,
        {},
        log_run,
        params,
    )
