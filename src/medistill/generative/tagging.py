"""Generative models in the NER comparison, loaded and evaluated: a tagger that writes its
mentions as text (`medistill.generative.text`; how each kind writes them:
`medistill.generative.outputs`), scored by the same seqeval protocol, on the same test and
robustness sets, as the encoder teacher and its students.

Three kinds of tagger:
- `finetuned`: an encoder-decoder fine-tuned on the task's train split, sentence -> linearised
  `TYPE: mention` lines. From an encoder (`from`: a `teachers` entry) it is a BERT2BERT
  warm-started with `medistill.seq2seq.model.warm_started`, so one runs offline here; from a hub
  encoder-decoder (BARThez, mT5), that model.
- `finetuned-llm`: a pretrained causal LM (`source`: a hub or local model, or a GGUF file in a
  package, dequantised to float32) fine-tuned on the train split to answer a bare
  `Phrase : ... / Entités :` prompt with the lines (its top `train_layers` blocks, or all).
- `prompted`: a causal LM with a chat template (`AutoModelForCausalLM`), zero- or few-shot, the
  examples drawn from the train split with the config's seed.
- `gliner`: a GLiNER span model (Zaratiana et al. 2024), the small zero-shot reference: it
  scores spans against the entity types' descriptions; its spans are written as the same
  `TYPE: mention` lines, so one parse and one set of counts serve every kind.

The generative kinds decode greedily (transformers' `generate`, or llama.cpp for prompted GGUF
models: `medistill.models.llm_engines`). Every output line that
cannot be parsed or aligned to the sentence's words is counted (`ParseCounts`) and reported
with the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch

from medistill.core.device import choose_device
from medistill.core.energy import track_energy
from medistill.core.hashing import file_sha256
from medistill.core.io import read_jsonl, write_json
from medistill.generative.outputs import (
    VllmEngine,
    causal_outputs,
    causal_source,
    gliner_outputs,
    load_gliner,
    prompt_ids,
    seq2seq_outputs,
    shared_prefix,
    tag_outputs,
    task_entity_types,
    type_descriptions,
)
from medistill.generative.text import (
    ParseCounts,
    few_shot_examples,
)
from medistill.models.compress import model_disk_mb
from medistill.models.llm_engines import (
    GenerationStats,
    LlamaCppEngine,
    TransformersEngine,
)
from medistill.models.packaged_gguf import gguf_parameters, gguf_source
from medistill.models.teachers import GLINER_CONFIG, fetch_teacher
from medistill.ner.cache import teacher_weights_sha
from medistill.ner.scoring import mask_ignored, ner_scores, sentence_counts, with_unaligned_lines


def _latency_ms(tag: Callable[[list[dict]], list[str]], sentences: Sequence[dict], runs: int):
    """Median milliseconds to tag one sentence at batch 1 (after one warm-up call)."""
    import time

    timings = []
    for index, sentence in enumerate([sentences[0], *sentences[:runs]]):
        began = time.perf_counter()
        tag([sentence])
        if index:
            timings.append((time.perf_counter() - began) * 1000)
    return float(np.median(timings))


@dataclass
class Tagger:
    """A loaded generative tagger: `outputs(sentences, device)` gives its raw text per sentence,
    `tags(sentences)` the parsed IOB2 tags and each sentence's parse counts. `engine` is what
    writes the outputs; a prompted tagger on llama.cpp also has `transformers_engine`, the same
    prompts run by transformers (loaded on first use), for the engines' latency comparison."""

    outputs: Callable[..., list[str]]
    entity_types: list[str]
    licence: str
    size: str
    device: str
    engine: str
    params_total: int
    params_non_embedding: int
    disk_mb: float
    weights_sha: str
    set_threads: Callable[[int], None] = torch.set_num_threads
    to_cpu: Callable[[], None] = lambda: None
    stats: GenerationStats | None = None  # a causal LM's generated tokens and seconds
    transformers_engine: Callable[[], Callable[..., list[str]]] | None = None

    def tags(self, sentences: Sequence[dict]) -> tuple[list[list[str]], list[ParseCounts]]:
        return tag_outputs(self.outputs(sentences, self.device), sentences, self.entity_types)


def _counted(model, embeddings) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    return total, total - embeddings.weight.numel()


def _check_descriptions(tagger: str, given: dict, descriptions: dict, task_dir: Path) -> None:
    """A `descriptions` key must be a type of the task (a misspelt one would go unused), and
    no two types may be described alike (GLiNER finds a span's type back from its text)."""
    where = f"generative.taggers.{tagger}.descriptions"
    for name in given:
        if name not in descriptions:
            raise ValueError(
                f"{where}.{name}: not an entity type of {Path(task_dir) / 'labels.json'} "
                f"(types: {', '.join(descriptions)}); fix or remove the key"
            )
    texts = list(descriptions.values())
    for name, text in descriptions.items():
        if texts.count(text) > 1:
            raise ValueError(f"{where}.{name}: '{text}' describes two types; make them differ")


def _prompted(config: dict, spec: dict, task_dir: Path, descriptions: dict, allow_network: bool):
    """The fields of a prompted tagger's `Tagger`: its prompts (few-shot examples drawn from
    the task's train split), its engine, its size and its weights' hash. A GGUF source (a
    package's or a local file) is read by transformers (dequantised to float32) or run by
    llama.cpp as it is."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    generation = config["generative"]["generation"]
    remote = config["trust_remote_code"]
    gguf = gguf_source(spec["source"])
    folder, gguf_file = causal_source(spec["source"], allow_network)
    # a GGUF file dequantised to float32; a folder in its weights' dtype
    load = gguf_file | {"dtype": torch.float32 if gguf_file else "auto"}
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=remote, **gguf_file)
    examples = few_shot_examples(
        read_jsonl(Path(task_dir) / "train.jsonl"), spec["shots"], config["seed"]
    )
    prefix = shared_prefix(tokenizer, examples, descriptions)

    def prompts(sentences):
        return prompt_ids(tokenizer, sentences, examples, descriptions)

    @cache
    def transformers_engine() -> TransformersEngine:
        # in the dtype of its weights (bf16 for most instruction models), not float32
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=remote, **load)
        return TransformersEngine(model, tokenizer, prefix, generation["max_new_tokens"])

    def runs_on(engine):
        return lambda sentences, device: engine.complete(prompts(sentences), device)

    fields = {"engine": generation["engine"]}
    if gguf is None:
        fields |= {"weights_sha": teacher_weights_sha(folder), "disk_mb": model_disk_mb(folder)}
    else:
        fields |= {"weights_sha": file_sha256(gguf)[:16], "disk_mb": gguf.stat().st_size / 2**20}
    if generation["engine"] == "llama-cpp":
        engine = LlamaCppEngine(
            gguf, generation["context"], torch.get_num_threads(), generation["max_new_tokens"]
        )
        total, embeddings = gguf_parameters(gguf)
        fields |= {
            "outputs": runs_on(engine),
            "params_total": total,
            "params_non_embedding": total - embeddings,
            "set_threads": engine.set_threads,
            "stats": engine.stats,
            "transformers_engine": lambda: runs_on(transformers_engine()),
        }
        return fields
    local = transformers_engine()
    total, non_embedding = _counted(local.model, local.model.get_input_embeddings())
    fields |= {
        "params_total": total,
        "params_non_embedding": non_embedding,
        "stats": local.stats,
        "to_cpu": local.model.cpu,
    }
    if generation["engine"] == "vllm":  # the transformers copy times batch 1 on the CPU
        served = VllmEngine(folder, generation["max_new_tokens"], remote, config["seed"])

        def outputs(sentences, device):
            return runs_on(local if device == "cpu" else served)(sentences, device)

        return fields | {"outputs": outputs}
    local.model.to(choose_device(config["device"]))
    return fields | {"outputs": runs_on(local)}


def load_tagger(
    config: dict, tagger: str, model_dir: Path | None, task_dir: Path, allow_network: bool = False
) -> Tagger:
    """A `finetuned` or `finetuned-llm` tagger from its folder, or a `prompted` or `gliner` one
    from its `source` (downloaded only with `allow_network`)."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    family = config["generative"]
    spec = family["taggers"][tagger]
    generation = family["generation"]
    remote = config["trust_remote_code"]
    entity_types = task_entity_types(task_dir)
    descriptions = type_descriptions(entity_types, spec.get("descriptions"))
    _check_descriptions(tagger, spec.get("descriptions", {}), descriptions, task_dir)
    device = choose_device(config["device"])
    common = {"entity_types": entity_types, "device": device, "licence": spec.get("licence")}
    if spec["kind"] == "prompted":
        fields = _prompted(config, spec, task_dir, descriptions, allow_network)
        return Tagger(size=f"prompted-{spec['shots']}shot", **common, **fields)
    stats = None  # generated tokens and seconds, where the outputs are generated text
    if spec["kind"] == "gliner":
        model_dir = fetch_teacher(spec["source"], allow_network, GLINER_CONFIG)
        model = load_gliner(model_dir, remote)

        def outputs(sentences, device):
            model.to(device)
            return gliner_outputs(
                model, sentences, descriptions, spec["threshold"], generation["batch_size"]
            )

        size = "zero-shot"
        embeddings = model.model.token_rep_layer.bert_layer.model.get_input_embeddings()
    elif spec["kind"] == "finetuned-llm":
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=remote)
        model = AutoModelForCausalLM.from_pretrained(model_dir, trust_remote_code=remote)
        stats = GenerationStats()

        def outputs(sentences, device):
            return causal_outputs(model, tokenizer, sentences, generation, device, stats)

        size, embeddings = "finetuned", model.get_input_embeddings()
    else:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=remote)
        model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, trust_remote_code=remote)

        def outputs(sentences, device):
            return seq2seq_outputs(model, tokenizer, sentences, generation, device)

        common["licence"], size = config["teachers"][spec["from"]]["licence"], "finetuned"
        embeddings = model.get_input_embeddings()
    model.eval().to(device)
    total, non_embedding = _counted(model, embeddings)
    return Tagger(
        outputs,
        size=size,
        engine="transformers",
        params_total=total,
        params_non_embedding=non_embedding,
        disk_mb=model_disk_mb(model_dir),
        weights_sha=teacher_weights_sha(model_dir),
        to_cpu=model.cpu,
        stats=stats,
        **common,
    )


def evaluate_generative_tagger(
    config: dict,
    tagger: str,
    model_dir: Path | None,
    task_dir: Path,
    test_files: dict[str, Path],
    out_path: Path,
    reference_teacher: str,
    task: str,
    log_run: Callable[..., object],
    allow_network: bool = False,
) -> dict:
    """Score a tagger on the task's test sets with the NER protocol and time it; write an eval
    JSON the NER report reads as a `generative` row (its retention and speedup against
    `reference_teacher`), with the parse counts of the clean test set.

    Scores are micro F1 by seqeval, with every output line that names no mention of its
    sentence (malformed, of an unknown type, not found) counted as a false positive, as a wrong
    mention of an encoder would be (`ner.scoring.with_unaligned_lines`); `f1_<set>` for each
    robustness set, the `unseen` set's seen mentions masked as for the encoders. A prompted
    tagger is read from its `source` (`model_dir` None), downloaded only with
    `allow_network`; on llama.cpp it is also timed with transformers."""
    spec = config["generative"]["taggers"][tagger]
    generation = config["generative"]["generation"]
    loaded = load_tagger(config, tagger, model_dir, task_dir, allow_network)
    identity = {
        "teacher": tagger,
        "corpus": "generative",
        "size": loaded.size,
        "task": task,
        "role": "generative",
        "reference_teacher": reference_teacher,
    }
    result = dict(identity)
    # Decoding is greedy, so a sentence met again (the `unseen` set is the clean one, masked)
    # is not generated again.
    answers: dict[tuple[str, ...], str] = {}
    with track_energy(config, "inference") as inference:
        for name, path in test_files.items():
            sentences = read_jsonl(path)
            distinct = dict.fromkeys(tuple(s["words"]) for s in sentences)
            new = [words for words in distinct if words not in answers]
            if new:  # (a fast tokenizer cannot encode an empty batch)
                batch = [{"words": list(words)} for words in new]
                answers |= dict(zip(new, loaded.outputs(batch, loaded.device), strict=True))
            outputs = [answers[tuple(s["words"])] for s in sentences]
            tags, counts = tag_outputs(outputs, sentences, loaded.entity_types)
            gold, tags = mask_ignored(sentences, tags)
            scores, per_sentence = with_unaligned_lines(
                ner_scores(gold, tags),
                sentence_counts(gold, tags),
                [c.unaligned() for c in counts],
            )
            if name == "clean":
                parse = ParseCounts.summed(counts).as_dict()
                result |= scores | {"parse": parse, "n_test_sentences": len(gold)}
                write_json(per_sentence.tolist(), Path(out_path).with_suffix(".counts.json"))
            else:
                result[f"f1_{name}"] = scores["f1"]
    result |= {f"{k}_inference": inference[k] for k in ("energy_kwh", "co2_kg") if k in inference}
    clean = read_jsonl(test_files["clean"])
    runs = config["evaluate"]["latency_runs"]
    if loaded.device == "cuda" and loaded.engine != "llama-cpp":  # each call ends synchronised
        result["gpu_latency_ms_b1"] = _latency_ms(lambda s: loaded.outputs(s, "cuda"), clean, runs)
        result["gpu_name"] = torch.cuda.get_device_name()
    threads = config["evaluate"]["latency_threads"]
    before = torch.get_num_threads()
    loaded.set_threads(threads)
    try:
        loaded.to_cpu()
        if loaded.stats is not None:
            loaded.stats.tokens, loaded.stats.seconds = 0, 0.0
        result["latency_ms_b1"] = _latency_ms(lambda s: loaded.outputs(s, "cpu"), clean, runs)
        result["engine"] = loaded.engine
        if loaded.stats is not None:
            result["tokens_per_s_b1"] = loaded.stats.tokens_per_s()
        compared = generation["transformers_latency_runs"]
        if loaded.transformers_engine is not None and compared:
            torch.set_num_threads(threads)
            on_transformers = loaded.transformers_engine()
            result["latency_ms_b1_transformers"] = _latency_ms(
                lambda s: on_transformers(s, "cpu"), clean, compared
            )
    finally:
        loaded.set_threads(before)
        torch.set_num_threads(before)
    result |= {
        "params_total": loaded.params_total,
        "params_non_embedding": loaded.params_non_embedding,
        "disk_mb": loaded.disk_mb,
        "licence": loaded.licence,
    }
    write_json(result, out_path)
    log_run(
        f"evaluate/generative/{tagger}/{task}",
        params={"tagger": spec, "generation": generation},
        metrics={k: v for k, v in result.items() if isinstance(v, int | float)},
        tags={k: str(v) for k, v in identity.items()} | {"stage": "evaluate"},
        artifacts=[Path(out_path)],
    )
    return result
