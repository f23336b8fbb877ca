"""Check a sweep configuration before any job starts (its defaults: `core.schema`).

Schema errors and semantic errors (a sweep naming an unknown size, a teacher that cannot be
found, a licence outside the allow-list) are raised as ConfigError with the key path and the fix,
so a bad config costs seconds, not the hours of a half-run sweep.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema

from medistill.core.errors import ConfigError
from medistill.core.schema import load_schema, with_defaults
from medistill.data.tasks import BASELINE_CORPUS

# The keys of `tasks.NAME.files` that name files or folders the task reads.
TASK_FILE_PATHS = ("path", "split_file", "documents")


def _hint(error: jsonschema.ValidationError) -> str:
    """Say what to do about a schema violation, not only what is wrong."""
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = f"; allowed keys here: {', '.join(allowed)}" if allowed else ""
        return f"remove the key or fix its spelling{extra}"
    if error.validator == "required":
        return "add the missing key"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"use a value within the bound ({error.validator} {error.validator_value})"
    if error.validator == "enum":
        return f"use one of {error.validator_value}"
    if error.validator == "pattern":
        return f"the value must match {error.validator_value}"
    if error.validator == "type":
        return f"use a value of type {error.validator_value}"
    return "see workflow/schemas/config.schema.yaml"


def _message(error: jsonschema.ValidationError) -> str:
    """The schema's message, except for a key another kind of entry takes (a `not` of
    `required` lists, as the tagger kinds and the task-file formats have): which keys, and the
    kind or format they do not fit."""
    forbidden = error.validator_value.get("anyOf", []) if error.validator == "not" else []
    extra = [k for rule in forbidden for k in rule.get("required", []) if k in error.instance]
    if not extra:
        return error.message
    field = "kind" if "kind" in error.instance else "format"
    return f"{', '.join(extra)} is not a setting of {field} {error.instance.get(field)}; remove it"


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties" and "'" in error.message:
        parts.append(error.message.split("'")[1])
    return ".".join(parts) or "(top level)"


def generative_teachers(config: dict) -> dict[str, str]:
    """Swept teachers that learn from a generative tagger's silver tags -> that tagger."""
    return {
        name: config["teachers"][name]["labels_from"]
        for name in config["sweep"]["teachers"]
        if "labels_from" in config["teachers"][name]
    }


def teachers_used(config: dict) -> list[str]:
    """The teachers (not mixes) the sweep runs: swept ones, the members of swept mixes, the
    `init` of generative teachers."""
    used = []
    for name in config["sweep"]["teachers"]:
        spec = config["teachers"][name]
        members = [spec["init"]] if "labels_from" in spec else spec.get("mix", [name])
        for member in members:
            if member not in used:
                used.append(member)
    return used


def _label_set(config: dict, task: str) -> tuple:
    """What the config says of a task's labels: its entity types where declared, else its name."""
    spec = config["tasks"][task]
    if "synthetic" in spec:
        from medistill.data.lexicons import LABELS

        return ("types", tuple(sorted(LABELS)))
    if spec["files"].get("labels"):
        return ("types", tuple(sorted(spec["files"]["labels"])))
    return ("task", task)


def _check_recipes(node: dict, where: str, path: str = "") -> None:
    """A recipe that keeps its final step (`keep: last`) runs every step: early stopping would
    end it on whatever step it stopped at."""
    if node.get("keep") == "last" and node.get("patience"):
        raise ConfigError(
            f"{where}: {path}keep is 'last' with patience {node['patience']}: a run that keeps "
            "its final step runs every step; set patience: 0, or keep: best"
        )
    for key, value in node.items():
        if isinstance(value, dict):
            _check_recipes(value, where, f"{path}{key}.")


def _check_references(config: dict, where: str) -> None:
    sweep = config["sweep"]
    if BASELINE_CORPUS in config["corpora"]:
        raise ConfigError(
            f"{where}: corpora.{BASELINE_CORPUS}: the name '{BASELINE_CORPUS}' is reserved for the "
            "baseline students (trained on gold labels alone); rename the corpus"
        )
    for key, section in (("teachers", "teachers"), ("corpora", "corpora"), ("sizes", "sizes")):
        for name in sweep[key]:
            if name not in config[section]:
                raise ConfigError(
                    f"{where}: sweep.{key} names '{name}', which is not defined under "
                    f"'{section}' (defined: {', '.join(config[section])}); add it or fix the name"
                )
    if config.get("distill", {}).get("corpus_gold") and len(sweep["corpora"]) != 1:
        raise ConfigError(
            f"{where}: distill.corpus_gold is true with {len(sweep['corpora'])} corpora in "
            "sweep.corpora: the gold-only twins train on the corpus's gold tags too, so they "
            "need one corpus; sweep one corpus, or set corpus_gold: false"
        )
    for name, size in config["sizes"].items():
        source = size.get("from")
        if source is not None and "layers" not in config["sizes"].get(source, {}):
            raise ConfigError(
                f"{where}: sizes.{name}.from is '{source}', which is not a trained size (one "
                "with `layers`) defined under 'sizes'; name a trained size"
            )
    for name, teacher in config["teachers"].items():
        if "mix" not in teacher:
            continue
        for member in teacher["mix"]:
            if "source" not in config["teachers"].get(member, {}):
                raise ConfigError(
                    f"{where}: teachers.{name}.mix names '{member}', which is not a teacher with "
                    "a source under 'teachers' (mixes cannot nest); define it or fix the name"
                )
        if teacher["init"] not in teacher["mix"]:
            raise ConfigError(
                f"{where}: teachers.{name}.init is '{teacher['init']}', which is not one of its "
                f"mix's members ({', '.join(teacher['mix'])}); name a member"
            )
    for name, teacher in config["teachers"].items():
        if "labels_from" not in teacher:
            continue
        if "source" not in config["teachers"].get(teacher["init"], {}):
            raise ConfigError(
                f"{where}: teachers.{name}.init is '{teacher['init']}', which is not a teacher "
                "with a source under 'teachers'; name the encoder its students start from"
            )
        taggers = config.get("generative", {}).get("taggers", {})
        if teacher["labels_from"] not in taggers:
            raise ConfigError(
                f"{where}: teachers.{name}.labels_from is '{teacher['labels_from']}', which is "
                f"not defined under 'generative.taggers' (defined: {', '.join(taggers) or 'none'})"
                "; define the tagger or fix the name"
            )
    for name, teacher in config["teachers"].items():
        task = teacher.get("task")
        if task is not None and task not in config["tasks"]:
            raise ConfigError(
                f"{where}: teachers.{name}.task is '{task}', which is not defined under 'tasks'"
            )
    if sweep["task"] not in config["tasks"]:
        raise ConfigError(
            f"{where}: sweep.task is '{sweep['task']}', which is not defined under 'tasks' "
            f"(defined: {', '.join(config['tasks'])})"
        )


def _check_local_paths(config: dict, where: str) -> None:
    """Corpus sources and task files read from disk must exist before hours are spent: relative
    paths are read from the working directory, as the jobs will read them."""
    sweep = config["sweep"]
    for name in sweep["corpora"]:
        for index, source in enumerate(config["corpora"][name]["sources"]):
            if "path" in source and not Path(source["path"]).expanduser().exists():
                raise ConfigError(
                    f"{where}: corpora.{name}.sources[{index}].path: {source['path']} does not "
                    f"exist (read from {Path.cwd()}); fix the path or remove the source"
                )
    tasks = {sweep["task"]} | {config["teachers"][t].get("task") for t in teachers_used(config)}
    for name in sorted(t for t in tasks if t):
        files = config["tasks"][name].get("files", {})
        for key in TASK_FILE_PATHS:
            if key in files and not Path(files[key]).expanduser().exists():
                raise ConfigError(
                    f"{where}: tasks.{name}.files.{key}: {files[key]} does not exist (read from "
                    f"{Path.cwd()}); fix the path"
                )


def _check_licence(
    name: str, licence: str, config: dict, where: str, section: str = "teachers"
) -> None:
    licences = config["licences"]
    if licence in licences["allowed"] or name in licences["accept"]:
        return
    raise ConfigError(
        f"{where}: {section}.{name}.licence is '{licence}', which is not in licences.allowed "
        f"({', '.join(licences['allowed'])}); check that its terms fit your use, then add "
        f"'{name}' to licences.accept or the licence to licences.allowed"
    )


def _check_teachers(config: dict, where: str) -> None:
    from medistill.core.errors import TeacherSourceError
    from medistill.models.students import validate_student_spec
    from medistill.models.teachers import has_masked_lm_head, resolve_teacher

    sweep = config["sweep"]
    for name in sweep["teachers"]:
        teacher = config["teachers"][name]
        if "source" in teacher and teacher["task"] != sweep["task"]:
            raise ConfigError(
                f"{where}: teachers.{name}.task is '{teacher['task']}' but the sweep evaluates "
                f"on '{sweep['task']}'; a teacher of another task can only join a mix"
            )
        if "mix" in teacher:
            wanted = _label_set(config, sweep["task"])
            for member in teacher["mix"]:
                if _label_set(config, config["teachers"][member]["task"]) != wanted:
                    raise ConfigError(
                        f"{where}: teachers.{name}.mix: member '{member}' is fine-tuned on task "
                        f"'{config['teachers'][member]['task']}', whose labels differ from "
                        f"those of '{sweep['task']}'; a mix averages label distributions, so "
                        "its members must share one label set"
                    )
    # Shapes are checked against the teachers students are cut from: swept ones, mixes' init.
    shaped = {config["teachers"][n].get("init", n) for n in sweep["teachers"]}
    for name in teachers_used(config):
        teacher = config["teachers"][name]
        _check_licence(name, teacher["licence"], config, where)
        try:
            path = resolve_teacher(teacher["source"], allow_network=config["allow_network"])
        except TeacherSourceError as error:
            raise ConfigError(f"{where}: teachers.{name}.source: {error}") from None
        if path is None or name not in shaped:  # a hub model's shape is only known at run time
            continue
        teacher_config = json.loads((path / "config.json").read_text())
        swept = config["sweep"]["sizes"]
        trained = {config["sizes"][s].get("from", s) for s in swept}  # compressed: their source
        for size in sorted(trained):
            spec = config["sizes"][size]
            for problem in validate_student_spec(spec, teacher_config):
                raise ConfigError(f"{where}: sizes.{size} with teacher '{name}': {problem}")
            general = config["distill"]["general"]
            masked_lm = has_masked_lm_head(teacher_config)
            if spec["mode"] != "task" and not masked_lm and not general["hidden_layers"]:
                raise ConfigError(
                    f"{where}: sizes.{size}.mode is '{spec['mode']}' but teacher '{name}' has "
                    "no masked-LM head and distill.general.hidden_layers is empty: there is "
                    "nothing to distil; list hidden layers or use mode: task"
                )


def _check_generative(config: dict, where: str) -> None:
    """The generative taggers of the NER comparison and of generative teachers: names, the
    teacher a fine-tuned one starts from, licences and sources, checked before any job.

    A prompted or GLiNER tagger of `generative.sweep` whose hub model is not available offline
    (not in the local cache, `allow_network` false) is taken out of the sweep with a message
    on stderr, so an offline run still reports the rest; one a generative teacher learns from
    is an error."""
    from medistill.core.errors import TeacherSourceError
    from medistill.models.llm_engines import LLAMA_CPP_BUILD
    from medistill.models.packaged_gguf import gguf_source
    from medistill.models.teachers import GLINER_CONFIG, resolve_teacher

    family = config["generative"]
    teaching = generative_teachers(config)
    for name in family["sweep"]:
        if name not in family["taggers"]:
            raise ConfigError(
                f"{where}: generative.sweep names '{name}', which is not defined under "
                f"'generative.taggers' (defined: {', '.join(family['taggers']) or 'none'})"
            )
    clashes = sorted(set(family["taggers"]) & set(config["teachers"]))
    if clashes:
        raise ConfigError(
            f"{where}: generative.taggers.{clashes[0]}: a teacher has the same name; rename one "
            "(report rows are named by teacher or tagger)"
        )
    skipped = []
    engine = family["generation"]["engine"]
    for name in dict.fromkeys([*family["sweep"], *teaching.values()]):
        tagger = family["taggers"][name]
        if tagger["kind"] == "finetuned":
            base = config["teachers"].get(tagger["from"], {})
            if "source" not in base:
                raise ConfigError(
                    f"{where}: generative.taggers.{name}.from is '{tagger['from']}', which is "
                    "not a teacher with a source under 'teachers'; name one"
                )
            continue
        _check_licence(name, tagger["licence"], config, where, "generative.taggers")
        marker = GLINER_CONFIG if tagger["kind"] == "gliner" else "config.json"
        gguf = None
        try:
            gguf = gguf_source(tagger["source"]) if tagger["kind"] != "gliner" else None
            if gguf is None:
                resolve_teacher(tagger["source"], config["allow_network"], marker)
        except TeacherSourceError as error:
            offline_hub = tagger["source"].startswith("hub:") and not config["allow_network"]
            if not offline_hub or name in teaching.values():
                raise ConfigError(f"{where}: generative.taggers.{name}.source: {error}") from None
            skipped.append(name)
            print(
                f"medistill: generative.taggers.{name} skipped (no row in the report): {error}",
                file=sys.stderr,
            )
            continue
        if tagger["kind"] == "prompted" and gguf is None and engine == "llama-cpp":
            raise ConfigError(
                f"{where}: generative.taggers.{name}.source is not a GGUF file, which "
                "generation.engine llama-cpp needs (package:NAME or local:PATH.gguf); use "
                "engine transformers for this config"
            )
        if tagger["kind"] == "prompted" and gguf is not None and engine == "vllm":
            raise ConfigError(
                f"{where}: generative.taggers.{name}.source is a GGUF file, which "
                "generation.engine vllm does not serve here; use engine llama-cpp (CPU) or "
                "transformers"
            )
    family["sweep"] = [name for name in family["sweep"] if name not in skipped]
    if family["generation"]["engine"] == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(
            f"{where}: generative.generation.engine is 'vllm' but vLLM is not installed; on a "
            "CUDA machine run `pip install 'medistill[vllm]'`, or use engine: transformers"
        )
    if engine == "llama-cpp" and importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            f"{where}: generative.generation.engine is 'llama-cpp' but llama-cpp-python is not "
            f"installed; run `{LLAMA_CPP_BUILD}` (README: prompted LLMs), or use engine: "
            "transformers"
        )


def _check_seq2seq(config: dict, where: str) -> None:
    """The seq2seq family's names, teachers, depths and pair files, checked before any job."""
    from medistill.core.errors import TaskDataError, TeacherSourceError
    from medistill.models.teachers import resolve_teacher
    from medistill.seq2seq.tasks import check_pair_files

    family = config["seq2seq"]
    for key in ("tasks", "sizes", "sweep"):
        if key not in family:
            raise ConfigError(
                f"{where}: families lists seq2seq but seq2seq.{key} is missing; add it "
                "(config/seq2seq/base.yaml is an example) or remove seq2seq from families"
            )
    sweep = family["sweep"]
    llm_teachers = family["llm_teachers"]
    for name, spec in llm_teachers.items():
        where_llm = f"{where}: seq2seq.llm_teachers.{name}"
        if name in config["teachers"]:
            raise ConfigError(f"{where_llm} is also a `teachers` entry; give it another name")
        init = config["teachers"].get(spec["init"], {})
        if "source" not in init:
            raise ConfigError(
                f"{where_llm}.init is '{spec['init']}', which is not a single teacher of "
                f"`teachers` (defined: {', '.join(config['teachers'])}); name the encoder whose "
                "BERT2BERT its students are shrunk from"
            )
    sections = {
        "tasks": family["tasks"],
        "teachers": config["teachers"] | llm_teachers,
        "corpora": config["corpora"],
        "sizes": family["sizes"],
    }
    for key, section in sections.items():
        for name in sweep[key]:
            if name not in section:
                raise ConfigError(
                    f"{where}: seq2seq.sweep.{key} names '{name}', which is not defined "
                    f"(defined: {', '.join(section)}); add it or fix the name"
                )
    for name, size in family["sizes"].items():
        source = size.get("from")
        if source is not None and "decoder_layers" not in family["sizes"].get(source, {}):
            raise ConfigError(
                f"{where}: seq2seq.sizes.{name}.from is '{source}', which is not a trained "
                "size (one with encoder_layers and decoder_layers); name a trained size"
            )
    trained = {family["sizes"][s].get("from", s) for s in sweep["sizes"]}
    for name in sweep["teachers"]:
        if name in llm_teachers:  # its students are shrunk from its init's BERT2BERT
            spec = llm_teachers[name]
            _check_licence(name, spec["licence"], config, where, "seq2seq.llm_teachers")
            _check_llm_source(name, spec, config, where)
            name = spec["init"]
        teacher = config["teachers"][name]
        if "mix" in teacher:
            raise ConfigError(
                f"{where}: seq2seq.sweep.teachers names the mix '{name}'; seq2seq teachers are "
                "single models: name one of its members"
            )
        _check_licence(name, teacher["licence"], config, where)
        try:
            path = resolve_teacher(teacher["source"], allow_network=config["allow_network"])
        except TeacherSourceError as error:
            raise ConfigError(f"{where}: teachers.{name}.source: {error}") from None
        if path is None:  # a hub model's depth is only known once downloaded
            continue
        depths = _seq2seq_depths(json.loads((path / "config.json").read_text()))
        for size in sorted(trained):
            for half, depth in depths.items():
                wanted = family["sizes"][size][f"{half}_layers"]
                if wanted is not None and wanted > depth:
                    raise ConfigError(
                        f"{where}: seq2seq.sizes.{size}.{half}_layers is {wanted} but teacher "
                        f"'{name}' has {depth} {half} layers; keep at most {depth}"
                    )
    for name in sweep["tasks"]:
        spec = family["tasks"][name]
        if "files" in spec:
            try:
                check_pair_files(spec)
            except TaskDataError as error:
                raise ConfigError(f"{where}: seq2seq.tasks.{name}.files: {error}") from None


def _check_llm_source(name: str, spec: dict, config: dict, where: str) -> None:
    """An LLM teacher's source resolves (a packaged GGUF file is found) before any job."""
    from medistill.core.errors import TeacherSourceError
    from medistill.models.packaged_gguf import gguf_source

    try:
        gguf = gguf_source(spec["source"])
    except TeacherSourceError as error:
        raise ConfigError(f"{where}: seq2seq.llm_teachers.{name}.source: {error}") from None
    if spec["engine"] == "llama-cpp" and gguf is None:
        raise ConfigError(
            f"{where}: seq2seq.llm_teachers.{name}: engine llama-cpp runs a GGUF file, and "
            f"{spec['source']} is none; use a package: or local:PATH.gguf source, or engine "
            "transformers"
        )


def _seq2seq_depths(model_config: dict) -> dict[str, int]:
    """Encoder and decoder depths of a teacher: an encoder-decoder's own, or those of the
    BERT2BERT warm-started from an encoder (its layers on both sides)."""
    if model_config.get("is_encoder_decoder"):
        encoder = model_config.get("encoder_layers") or model_config.get("num_layers")
        decoder = model_config.get("decoder_layers") or model_config.get("num_decoder_layers")
        return {"encoder": encoder or 0, "decoder": decoder or encoder or 0}
    depth = model_config["num_hidden_layers"]
    return {"encoder": depth, "decoder": depth}


def _nearest_branch(error) -> list:
    """For an entry that fits none of a `oneOf`'s branches (one per `kind`), the errors of the
    branch it nearly fits (its `kind` matches; else the fewest errors), so the message names the
    missing or extra key instead of "not valid under any of the given schemas"."""
    if error.validator != "oneOf" or not error.context:
        return [error]
    branches: dict[int, list] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    return min(
        branches.values(),
        key=lambda subs: (any(s.validator == "const" for s in subs), len(subs)),
    )


def validate_config(config: dict, where: str = "config") -> dict:
    """Check `config` against the schema and its own references; return it with defaults.

    `where` names the config file in messages.
    """
    errors = sorted(
        (
            error
            for found in jsonschema.Draft202012Validator(load_schema()).iter_errors(config)
            for error in _nearest_branch(found)
        ),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        lines = [f"  - {_key_path(e)}: {_message(e)}; {_hint(e)}" for e in errors]
        raise ConfigError(f"{where} is not valid:\n" + "\n".join(lines))
    _check_references(config, where)
    config = with_defaults(config)
    _check_recipes(config, where)
    _check_local_paths(config, where)
    _check_teachers(config, where)
    if "seq2seq" in config["families"]:
        _check_seq2seq(config, where)
    _check_generative(config, where)
    return config
