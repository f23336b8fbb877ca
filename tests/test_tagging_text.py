"""NER as text: linearisation, parsing back to IOB2 (accents, case, apostrophes, malformed
lines counted), few-shot sampling and prompts."""

import importlib.util

import pytest
import torch

from medistill.data.spans import WORD
from medistill.generative.text import (
    NO_ENTITY,
    chat_messages,
    few_shot_examples,
    linearise,
    parse_mentions,
)

TYPES = ("DISO", "SOSY", "CHEM", "ANAT", "PROC")


def _words(text):
    return WORD.findall(text)


def test_linearise_then_parse_gives_back_the_gold_tags():
    words = _words("Douleur de l'épaule droite traitée par paracétamol 1 g.")
    tags = ["B-SOSY", "O", "B-ANAT", "I-ANAT", "I-ANAT", "I-ANAT", "O", "O", "B-CHEM", "O"]
    tags += ["O"] * (len(words) - len(tags))
    text = linearise(words, tags)
    assert text == "SOSY: Douleur\nANAT: l ' épaule droite\nCHEM: paracétamol"
    parsed, counts = parse_mentions(text, words, TYPES)
    assert parsed == tags
    assert counts.as_dict()["aligned"] == 3 and counts.as_dict()["unparsed_share"] == 0.0


def test_no_entity_round_trip():
    words = _words("Patient stable.")
    assert linearise(words, ["O"] * len(words)) == NO_ENTITY
    tags, counts = parse_mentions(NO_ENTITY, words, TYPES)
    assert tags == ["O"] * len(words) and counts.lines == 0


def test_mentions_align_without_accents_case_or_spaces_around_apostrophes_and_hyphens():
    words = _words("Masse latéro-cervicale et altération de l’état général.")
    output = "sosy: masse latero - cervicale\nDISO: l'etat general\nSOSY: ALTÉRATION"
    tags, counts = parse_mentions(output, words, TYPES)
    assert tags[:4] == ["B-SOSY", "I-SOSY", "I-SOSY", "I-SOSY"]
    assert tags[words.index("altération")] == "B-SOSY"
    start = words.index("l")
    assert tags[start : start + 4] == ["B-DISO", "I-DISO", "I-DISO", "I-DISO"]
    assert counts.aligned == 3


def test_a_mention_must_start_and_end_on_word_boundaries():
    words = _words("Hypertension artérielle.")
    tags, counts = parse_mentions("DISO: tension", words, TYPES)
    assert tags == ["O"] * len(words) and counts.not_found == 1


def test_bad_lines_are_counted_never_dropped_silently():
    words = _words("Diabète et asthme, asthme ancien.")
    output = "\n".join(
        [
            "Voici les entités :",  # malformed
            "MALADIE: diabète",  # unknown type
            "DISO: cancer",  # not in the sentence
            "DISO: asthme",  # both occurrences
            "SOSY: asthme",  # overlaps the line above
            "- DISO: diabète",  # a list bullet is fine
        ]
    )
    tags, counts = parse_mentions(output, words, TYPES)
    assert tags == ["B-DISO", "O", "B-DISO", "O", "B-DISO", "O", "O"]
    assert counts.as_dict() == {
        "lines": 6,
        "aligned": 2,
        "malformed": 1,
        "unknown_type": 1,
        "not_found": 1,
        "overlapping": 1,
        "unparsed_share": 4 / 6,
    }
    assert counts.examples == ["Voici les entités :"]


def _sentence(i, tagged):
    words = [f"mot{i}", "asthme" if tagged else "stable"]
    return {"id": f"train-{i}", "words": words, "tags": ["O", "B-DISO" if tagged else "O"]}


def test_few_shot_examples_are_seeded_and_show_both_outputs():
    train = [_sentence(i, tagged=i % 4 == 0) for i in range(40)]
    shots = few_shot_examples(train, 4, seed=1)
    assert shots == few_shot_examples(train, 4, seed=1)
    assert shots != few_shot_examples(train, 4, seed=2)
    assert sum(any(t != "O" for t in s["tags"]) for s in shots) == 2


def test_prompt_holds_the_examples_and_only_the_sentence_being_tagged():
    train = [_sentence(i, tagged=i % 2 == 0) for i in range(10)]
    test = [{"words": ["Toux", "sèche", "."]}, {"words": ["Fièvre", "à", "39", "."]}]
    examples = few_shot_examples(train, 2, seed=0)
    messages = chat_messages(test[0]["words"], {"DISO": "maladie"}, examples)
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1]["content"] == "Toux sèche ."
    everything = "\n".join(m["content"] for m in messages)
    assert "Fièvre" not in everything
    assert "- DISO : maladie" in messages[0]["content"]


CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory, minilm_path):
    """A 2-layer, 32-wide Llama with a chat template, saved as a local folder: its (random)
    outputs exercise the prompt, generation and parse path end to end."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.chat_template = CHAT_TEMPLATE
    config = LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
    )
    folder = tmp_path_factory.mktemp("tiny-causal-lm")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_prompted_causal_lm_tags_every_sentence_and_counts_what_it_cannot_parse(
    tiny_causal_lm,
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medistill.generative.outputs import (
        TYPE_DESCRIPTIONS,
        prompt_ids,
        shared_prefix,
        tag_outputs,
    )
    from medistill.generative.text import ParseCounts
    from medistill.models.llm_engines import TransformersEngine

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    train = [_sentence(i, tagged=i % 2 == 0) for i in range(6)]
    test = [
        {"words": _words("Toux sèche depuis l'été."), "tags": ["O"] * 7},
        {"words": _words("Fièvre à 39."), "tags": ["B-SOSY", "O", "O", "O"]},
    ]
    examples = few_shot_examples(train, 2, 0)
    prompts = prompt_ids(tokenizer, test, examples, TYPE_DESCRIPTIONS)
    prefix = shared_prefix(tokenizer, examples, TYPE_DESCRIPTIONS)
    # the prefix is the instruction and the examples, and every prompt starts with it
    assert len(prefix) > 20 and all(p[: len(prefix)] == prefix for p in prompts)
    cached = TransformersEngine(model, tokenizer, prefix, max_new_tokens=8)
    outputs = cached.complete(prompts)
    assert len(outputs) == 2 and all(isinstance(o, str) for o in outputs)
    assert cached.stats.tokens > 0 and cached.stats.tokens_per_s() > 0
    # the prefix's cache, reused, gives what the whole prompt computed afresh gives
    assert TransformersEngine(model, tokenizer, [], max_new_tokens=8).complete(prompts) == outputs
    tags, per_sentence = tag_outputs(outputs, test, list(TYPE_DESCRIPTIONS))
    counts = ParseCounts.summed(per_sentence)
    assert [len(t) for t in tags] == [7, 4]
    lines = sum(1 for o in outputs for line in o.splitlines() if line.strip())
    accounted = counts.aligned + counts.malformed + counts.unknown_type
    accounted += counts.not_found + counts.overlapping
    assert counts.lines == accounted <= lines


def test_a_base_model_without_a_chat_template_gets_plain_few_shot_blocks(minilm_path):
    from transformers import AutoTokenizer

    from medistill.generative.outputs import TYPE_DESCRIPTIONS, prompt_ids, prompt_texts

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    assert not tokenizer.chat_template
    train = [_sentence(i, tagged=i % 2 == 0) for i in range(6)]
    examples = few_shot_examples(train, 2, 0)
    sentence = {"words": _words("Fièvre à 39."), "tags": ["B-SOSY", "O", "O", "O"]}
    (text,) = prompt_texts(tokenizer, [sentence], examples, TYPE_DESCRIPTIONS)
    blocks = text.split("\n\n")
    assert blocks[0].startswith("Tu annotes des entités médicales")
    assert blocks[1] == (
        f"Phrase : {' '.join(examples[0]['words'])}\nEntités :\n"
        + linearise(examples[0]["words"], examples[0]["tags"])
    )
    assert blocks[-1] == "Phrase : Fièvre à 39 .\nEntités :\n"
    # the answer's stop string (a blank line) ends an example, never a line of one
    assert all("\n\n" not in linearise(e["words"], e["tags"]) for e in examples)
    (ids,) = prompt_ids(tokenizer, [sentence], examples, TYPE_DESCRIPTIONS)
    assert ids[0] == tokenizer.cls_token_id  # a plain prompt gets the tokenizer's start token


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(),
    reason="vLLM runs on CUDA machines only (the `vllm` extra)",
)
def test_vllm_and_transformers_give_the_same_spans_on_the_same_greedy_outputs(tiny_causal_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medistill.generative.outputs import (
        TYPE_DESCRIPTIONS,
        VllmEngine,
        prompt_ids,
        shared_prefix,
        tag_outputs,
    )
    from medistill.models.llm_engines import TransformersEngine

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    train = [_sentence(i, tagged=i % 2 == 0) for i in range(6)]
    test = [_sentence(10 + i, tagged=i % 2 == 0) for i in range(8)]
    examples, types = few_shot_examples(train, 2, 0), list(TYPE_DESCRIPTIONS)
    prompts = prompt_ids(tokenizer, test, examples, TYPE_DESCRIPTIONS)
    served = VllmEngine(tiny_causal_lm, 8, remote=False, seed=0)
    local = TransformersEngine(
        model, tokenizer, shared_prefix(tokenizer, examples, TYPE_DESCRIPTIONS), 8
    )
    vllm_outputs = served.complete(prompts)
    hf_outputs = local.complete(prompts, "cuda")
    assert tag_outputs(vllm_outputs, test, types)[0] == tag_outputs(hf_outputs, test, types)[0]


def test_a_template_without_a_system_role_gets_the_instruction_in_the_first_user_turn(
    minilm_path,
):
    from transformers import AutoTokenizer

    from medistill.generative.outputs import TYPE_DESCRIPTIONS, prompt_texts

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    tokenizer.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}"
        "{{ raise_exception('no system role') }}{% endif %}"
        "[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    )
    sentence = {"words": _words("Fièvre à 39."), "tags": ["B-SOSY", "O", "O", "O"]}
    (prompt,) = prompt_texts(tokenizer, [sentence], [], TYPE_DESCRIPTIONS)
    assert prompt.startswith("[user] Tu annotes des entités médicales")
    assert prompt.rstrip().endswith("Fièvre à 39 .")
