"""Generative models in the NER comparison: a tagger that writes its mentions as text
(`medistill.generative.text`), scored by the same seqeval protocol, on the same test and
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
from medistill.core.io import read_json, read_jsonl, write_json
from medistill.generative.objective import CausalAnswerObjective
from medistill.generative.text import (
    NO_ENTITY,
    ParseCounts,
    chat_messages,
    completion_prompt,
    few_shot_examples,
    linearise,
    parse_mentions,
    sentence_block,
)
from medistill.models.compress import model_disk_mb
from medistill.models.llm_engines import (
    STOP,
    GenerationStats,
    LlamaCppEngine,
    TransformersEngine,
    batched_greedy,
    common_prefix,
    cut_at_stop,
)
from medistill.models.packaged_gguf import gguf_parameters, gguf_source
from medistill.models.teachers import GLINER_CONFIG, fetch_teacher
from medistill.ner.cache import teacher_weights_sha
from medistill.ner.scoring import mask_ignored, ner_scores, sentence_counts, with_unaligned_lines
from medistill.seq2seq.distill import job_fingerprint
from medistill.seq2seq.model import encode_pairs, generate_texts, warm_started
from medistill.seq2seq.objective import Seq2SeqObjective
from medistill.training.loop import train_seeds

# French descriptions of the synthetic task's entity types (`data.lexicons.LABELS`), for prompts.
TYPE_DESCRIPTIONS = {
    "DISO": "maladie, trouble ou diagnostic",
    "SOSY": "signe ou symptôme",
    "CHEM": "médicament ou substance chimique",
    "ANAT": "partie du corps",
    "PROC": "procédure, examen ou acte médical",
}


def task_entity_types(task_dir: Path) -> list[str]:
    """The entity types of a prepared task (from its IOB2 `labels.json`), in label order."""
    labels = read_json(Path(task_dir) / "labels.json")
    return list(dict.fromkeys(label[2:] for label in labels if label != "O"))


def type_descriptions(
    entity_types: Sequence[str], overrides: dict[str, str] | None = None
) -> dict[str, str]:
    """What a prompt (or GLiNER) is told of each type: the tagger's own `descriptions`, else
    the French description of a synthetic type, else its name (a corpus's own types, e.g.
    E3C's CLINENTITY, are shown as they are called unless the config describes them)."""
    overrides = overrides or {}
    return {name: overrides.get(name, TYPE_DESCRIPTIONS.get(name, name)) for name in entity_types}


def sentence_pairs(sentences: Sequence[dict]) -> list[dict]:
    """Each tagged sentence as a pair: its words joined by spaces -> its linearised mentions."""
    return [
        {"id": s["id"], "source": " ".join(s["words"]), "target": linearise(s["words"], s["tags"])}
        for s in sentences
    ]


def tag_outputs(
    outputs: Sequence[str], sentences: Sequence[dict], entity_types: Sequence[str]
) -> tuple[list[list[str]], list[ParseCounts]]:
    """IOB2 tags of each sentence from its output, and what became of each output's lines."""
    parsed = [
        parse_mentions(output, sentence["words"], entity_types)
        for output, sentence in zip(outputs, sentences, strict=True)
    ]
    return [tags for tags, _ in parsed], [counts for _, counts in parsed]


# ---------------------------------------------------------------------------------------------
# Outputs


def seq2seq_outputs(model, tokenizer, sentences: Sequence[dict], generation: dict, device) -> list:
    """A fine-tuned tagger's greedy outputs, one per sentence."""
    return generate_texts(
        model,
        tokenizer,
        [" ".join(s["words"]) for s in sentences],
        max_source=generation["max_source"],
        max_new_tokens=generation["max_new_tokens"],
        num_beams=1,
        batch_size=generation["batch_size"],
        device=device,
    )


def causal_source(source: str, allow_network: bool) -> tuple[Path, dict]:
    """A causal LM's folder, and the argument that makes transformers read its GGUF file (a
    package's or a local one; none for a hub or local folder)."""
    gguf = gguf_source(source)
    if gguf is None:
        return fetch_teacher(source, allow_network), {}
    return gguf.parent, {"gguf_file": gguf.name}


def answer_prompts(tokenizer, sentences: Sequence[dict]) -> list[list[int]]:
    """A fine-tuned causal tagger's prompt for each sentence: the bare sentence block."""
    return tokenizer([sentence_block(s["words"]) for s in sentences])["input_ids"]


def causal_examples(tokenizer, sentences: Sequence[dict], max_new_tokens: int) -> list[dict]:
    """Each tagged sentence as one sequence to learn: its prompt, then its linearised mentions
    and the end token (the answer, cut to `max_new_tokens`); the prompt's labels are -100, so
    only the answer is learnt."""
    answers = tokenizer(
        [linearise(s["words"], s["tags"]) for s in sentences], add_special_tokens=False
    )["input_ids"]
    examples = []
    for prompt, answer in zip(answer_prompts(tokenizer, sentences), answers, strict=True):
        answer = [*answer[: max_new_tokens - 1], tokenizer.eos_token_id]
        examples.append({"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer})
    return examples


def causal_outputs(model, tokenizer, sentences: Sequence[dict], generation: dict, device, stats):
    """A fine-tuned causal tagger's greedy answers, batched."""
    return batched_greedy(
        model,
        tokenizer,
        answer_prompts(tokenizer, sentences),
        generation["max_new_tokens"],
        generation["batch_size"],
        device,
        stats,
    )


def train_top_blocks(model, blocks: int | None, where: str) -> None:
    """Leave only the top `blocks` transformer blocks (and the final norm) trainable: the
    frozen ones need no backward pass (measured on SmolLM2-135M, batch 8, 2 cores: 3.4 s a step
    for its top 10 of 30 blocks, 5.3 s for all). None trains the whole model."""
    if blocks is None:
        return
    layers = getattr(model.base_model, "layers", None)
    if layers is None or blocks > len(layers):
        raise ValueError(
            f"{where}: train_layers is {blocks} but the model has "
            f"{'no `layers` list' if layers is None else f'{len(layers)} blocks'}; lower it or "
            "remove the key to train every weight"
        )
    model.requires_grad_(False)
    for layer in layers[-blocks:]:
        layer.requires_grad_(True)
    model.base_model.norm.requires_grad_(True)


def prompt_texts(
    tokenizer, sentences: Sequence[dict], examples: Sequence[dict], descriptions: dict[str, str]
) -> list[str]:
    """Each sentence's request (the same examples for every sentence): a chat in the model's
    template, or for a base model without one (Gemma 3 270M) the plain few-shot text."""
    from jinja2.exceptions import TemplateError

    if not tokenizer.chat_template:
        return [completion_prompt(s["words"], descriptions, examples) for s in sentences]

    def render(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    prompts = []
    for sentence in sentences:
        messages = chat_messages(sentence["words"], descriptions, examples)
        try:
            prompts.append(render(messages))
        except TemplateError:  # templates without a system role (some Mistral versions)
            system, first, *rest = messages
            first = first | {"content": f"{system['content']}\n\n{first['content']}"}
            prompts.append(render([first, *rest]))
    return prompts


def prompt_ids(
    tokenizer, sentences: Sequence[dict], examples: Sequence[dict], descriptions: dict[str, str]
) -> list[list[int]]:
    """The token ids every engine is given: a chat template writes its own special tokens; a
    plain prompt gets the tokenizer's (a BOS token)."""
    texts = prompt_texts(tokenizer, sentences, examples, descriptions)
    return tokenizer(texts, add_special_tokens=not tokenizer.chat_template)["input_ids"]


def shared_prefix(tokenizer, examples: Sequence[dict], descriptions: dict[str, str]) -> list[int]:
    """The tokens every prompt starts with (instruction and examples), found as the common
    start of two prompts that differ only in their sentence."""
    first, second = prompt_ids(
        tokenizer, [{"words": ["a"]}, {"words": ["b"]}], examples, descriptions
    )
    return common_prefix(first, second)


@torch.no_grad()
def gliner_outputs(
    model, sentences: Sequence[dict], descriptions: dict[str, str], threshold: float, batch: int
) -> list[str]:
    """A GLiNER model's flat spans over each sentence (its words joined by spaces), as
    `TYPE: mention` lines in sentence order, the type found back from its description."""
    types = {description: name for name, description in descriptions.items()}
    texts = [" ".join(s["words"]) for s in sentences]
    found = model.inference(
        texts, list(types), flat_ner=True, threshold=threshold, batch_size=batch
    )
    return [
        "\n".join(
            f"{types[span['label']]}: {text[span['start'] : span['end']]}"
            for span in sorted(spans, key=lambda span: span["start"])
        )
        or NO_ENTITY
        for text, spans in zip(texts, found, strict=True)
    ]


def load_gliner(model_dir: Path, remote: bool):
    """A GLiNER snapshot, offline. GLiNER builds its backbone with `trust_remote_code=True`
    whatever the caller says, so a snapshot whose backbone names its own code (`auto_map`) is
    refused unless the config opts in to remote code."""
    from gliner import GLiNER

    backbone = read_json(Path(model_dir) / GLINER_CONFIG).get("encoder_config") or {}
    if "auto_map" in backbone and not remote:
        raise ValueError(
            f"{model_dir}: this GLiNER's backbone runs code from its repository (auto_map); "
            "set trust_remote_code: true in the config to allow it"
        )
    return GLiNER.from_pretrained(str(model_dir), local_files_only=True)


class VllmEngine:
    """A prompted tagger served by vLLM (GPU machines, the optional `vllm` extra), for the
    labelling of large corpora: the token ids of `prompt_ids`, decoded greedily (temperature
    0) to the same `max_new_tokens` and stop string as the other engines."""

    name = "vllm"

    def __init__(self, model_dir: Path, max_new_tokens: int, remote: bool, seed: int):
        from vllm import LLM, SamplingParams

        self.llm = LLM(model=str(model_dir), trust_remote_code=remote, seed=seed)
        self.params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop=list(STOP))

    def complete(self, prompts: Sequence[Sequence[int]], device="cuda") -> list[str]:
        results = self.llm.generate([{"prompt_token_ids": list(i)} for i in prompts], self.params)
        return [cut_at_stop(result.outputs[0].text) for result in results]


# ---------------------------------------------------------------------------------------------
# Fine-tuning


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


# ---------------------------------------------------------------------------------------------
# Evaluation


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
