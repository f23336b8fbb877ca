"""The config schema (`workflow/schemas/config.schema.yaml`), the one home of every default.

`with_defaults` fills a whole config (after `config.validate_config` checked it); a library
function that takes one entry (a corpus, a corpus source, a task's files, a student size, a
training recipe...) fills that entry from its place in the schema with `with_schema_defaults`,
so it reads every key without a fall-back of its own, whether the entry comes from a validated
config or from a caller.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from medistill.core.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"

# Where each kind of entry is described in the schema (a path of keys from its root).
ENTRIES = {
    "corpus": ("properties", "corpora", "additionalProperties"),
    "corpus_source": ("$defs", "corpus_source"),
    "augmentation": (
        "properties", "corpora", "additionalProperties", "properties", "augmentation"
    ),
    "task": ("properties", "tasks", "additionalProperties"),
    "task_files": ("properties", "tasks", "additionalProperties", "properties", "files"),
    "pair_files": (
        "properties", "seq2seq", "properties", "tasks", "additionalProperties",
        "properties", "files",
    ),
    "pair_hub": (
        "properties", "seq2seq", "properties", "tasks", "additionalProperties",
        "properties", "huggingface",
    ),
    "size": ("properties", "sizes", "additionalProperties"),
    "training": ("$defs", "training"),
    "energy": ("properties", "energy"),
    "report": ("properties", "report"),
}  # fmt: skip


@cache
def _schema_text() -> str:
    return SCHEMA_PATH.read_text()


def load_schema() -> dict:
    return yaml.safe_load(_schema_text())


def _fill_then_check(validator, properties, instance, node):
    """jsonschema's `properties` check, after setting each missing property's `default`."""
    if validator.is_type(instance, "object"):
        for key, field in properties.items():
            if isinstance(field, dict) and "default" in field:
                instance.setdefault(key, copy.deepcopy(field["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, node
    )


_Filling = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _fill_then_check}
)


def fill_defaults(schema: dict, node: dict, entry: dict) -> None:
    """Set, in place, the `default` of every key `entry` leaves out, at every depth `node`
    describes, where the entry's own kind or format selects it (`allOf` / `if` / `then`: a
    corpus source of kind `jsonl` gets `text_field`, a `text` one `glob`). Validation errors are
    not this function's business (the config was checked first): they are ignored."""
    for _ in _Filling({**node, "$defs": schema["$defs"]}).iter_errors(entry):
        pass


def with_schema_defaults(entry: dict, kind: str) -> dict:
    """A copy of `entry` (one of ENTRIES' kinds) with the schema's defaults filled in."""
    schema = load_schema()
    node = schema
    for key in ENTRIES[kind]:
        node = node[key]
    filled = copy.deepcopy(entry)
    fill_defaults(schema, node, filled)
    return filled


TRAINED_TAGGERS = ("finetuned", "finetuned-llm")  # kinds with a fine-tuning job and a folder


def _merge(defaults: dict, values: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


_NO_DEFAULT = object()


def _default(schema: dict, node: dict) -> Any:
    """The default a schema node gives: its own `default`, else its properties' defaults (a dict
    nested as the config nests them), over those of its `$ref`; _NO_DEFAULT when it gives none.

    Only `properties` are walked: defaults under `additionalProperties` (a corpus, task, teacher
    or size), `allOf` or `items` document what the reading code does, and are not collected.
    """
    if "default" in node:
        return copy.deepcopy(node["default"])
    found = _NO_DEFAULT
    if "$ref" in node:  # local: "#/$defs/..."
        target = schema
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        found = _default(schema, target)
    own = {}
    for key, spec in node.get("properties", {}).items():
        value = _default(schema, spec)
        if value is not _NO_DEFAULT:
            own[key] = value
    if not own:
        return found
    return own if found is _NO_DEFAULT else _merge(found, own)


def with_defaults(config: dict) -> dict:
    """The config with every optional key filled from the schema's `default`s, training recipes
    (`$defs/training`) included."""
    schema = load_schema()
    defaults = _default(schema, schema)
    # The sweep, sizes and teachers get their defaults after their own keys: Snakemake compares
    # a job's settings by repr, so the filled config keeps its key order.
    sweep_defaults = defaults.pop("sweep")
    merged = _merge(defaults, config)
    for key, value in sweep_defaults.items():
        merged["sweep"].setdefault(key, value)
    size_defaults = _default(schema, schema["properties"]["sizes"]["additionalProperties"])
    for size in merged["sizes"].values():
        if "layers" in size:  # a trained size; a compressed one takes its source's shape
            for key, value in size_defaults.items():
                size.setdefault(key, value)
    teacher_defaults = _default(schema, schema["properties"]["teachers"]["additionalProperties"])
    teachers = merged["teachers"]
    for teacher in teachers.values():
        if "mix" not in teacher:
            for key in ("trim_vocabulary", "average_seeds"):
                teacher.setdefault(key, teacher_defaults[key])
            teacher.setdefault("task", merged["sweep"]["task"])
            teacher["finetune"] = _merge(merged["finetune"], teacher.get("finetune", {}))
    tagger_defaults = schema["properties"]["generative"]["properties"]["taggers"]
    tagger_keys = tagger_defaults["additionalProperties"]["properties"]
    taggers = merged["generative"]["taggers"]
    kind_keys = {"prompted": "shots", "finetuned": "freeze_encoder", "gliner": "threshold"}
    for name, tagger in taggers.items():
        if tagger["kind"] in kind_keys:
            key = kind_keys[tagger["kind"]]
            tagger.setdefault(key, tagger_keys[key]["default"])
        if tagger["kind"] in TRAINED_TAGGERS:
            recipe = merged["generative"]["finetune"]
            tagger["finetune"] = _merge(recipe, tagger.get("finetune", {}))
            _check_merged_recipe(tagger["finetune"], schema, f"generative.taggers.{name}")
    llm_teachers = schema["properties"]["seq2seq"]["properties"]["llm_teachers"]
    llm_defaults = _default(schema, llm_teachers["additionalProperties"])
    for spec in merged["seq2seq"]["llm_teachers"].values():
        for key, value in llm_defaults.items():
            spec.setdefault(key, copy.deepcopy(value))
    for teacher in teachers.values():
        # a mix or generative teacher carries the licences of what its students learn from and
        # start from, for tags and the report
        if "mix" in teacher:
            licences = {teachers[m]["licence"] for m in teacher["mix"] if m in teachers}
        elif "labels_from" in teacher:
            licences = {tagger_licence(merged, teacher["labels_from"])} - {None}
            licences |= {teachers.get(teacher["init"], {}).get("licence")} - {None}
        else:
            continue
        teacher["licence"] = " AND ".join(sorted(licences))
        teacher["task"] = teachers.get(teacher["init"], {}).get("task")
    corpus_fields = schema["properties"]["corpora"]["additionalProperties"]
    task_fields = schema["properties"]["tasks"]["additionalProperties"]
    pair_fields = schema["properties"]["seq2seq"]["properties"]["tasks"]["additionalProperties"]
    for fields, entries in (
        (corpus_fields, merged["corpora"]),
        (task_fields, merged["tasks"]),
        (pair_fields, merged["seq2seq"].get("tasks", {})),
    ):
        for entry in entries.values():
            fill_defaults(schema, fields, entry)
    return merged


def _check_merged_recipe(recipe: dict, schema: dict, where: str) -> None:
    """A recipe merged from a block and its override, checked as a whole training block."""
    for error in jsonschema.Draft202012Validator(schema["$defs"]["training"]).iter_errors(recipe):
        key = ".".join(map(str, error.absolute_path))
        raise ConfigError(f"{where}.finetune{'.' + key if key else ''}: {error.message}; fix it")


def tagger_licence(config: dict, tagger: str) -> str | None:
    """A generative tagger's licence: its own, or a fine-tuned encoder-decoder's its base
    teacher's (None when the names do not resolve; the checks say so)."""
    spec = config["generative"]["taggers"].get(tagger)
    if spec is None:
        return None
    if spec["kind"] != "finetuned":
        return spec["licence"]
    return config["teachers"].get(spec["from"], {}).get("licence")
