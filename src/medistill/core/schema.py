"""The config schema (`workflow/schemas/config.schema.yaml`), the one home of every default.

`config.with_defaults` fills a whole config; a library function that takes one entry (a
corpus, a corpus source, a task's files, a student size, a training recipe...) fills that entry
from its place in the schema with `with_schema_defaults`, so it reads every key without a
fall-back of its own, whether the entry comes from a validated config or from a caller.
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import jsonschema
import yaml

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
