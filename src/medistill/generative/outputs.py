"""How each kind of generative tagger writes its `TYPE: mention` lines for a batch of sentences: a
fine-tuned encoder-decoder, a causal LM (fine-tuned, or prompted with a chat and few-shot
examples sharing one prefix; served by transformers, llama.cpp or vLLM) and GLiNER's spans;
the entity types' descriptions the prompts and GLiNER read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from medistill.core.io import read_json
from medistill.generative.text import (
    NO_ENTITY,
    ParseCounts,
    chat_messages,
    completion_prompt,
    linearise,
    parse_mentions,
    sentence_block,
)
from medistill.models.llm_engines import (
    STOP,
    batched_greedy,
    common_prefix,
    cut_at_stop,
)
from medistill.models.packaged_gguf import gguf_source
from medistill.models.teachers import GLINER_CONFIG, fetch_teacher
from medistill.seq2seq.model import generate_texts

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
