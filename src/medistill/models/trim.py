"""Vocabulary trimming: drop the embedding rows of tokens French medical text never uses.

A multilingual teacher such as multilingual-e5-small spends most of its parameters on a
250k-token embedding table covering a hundred languages. `trim_vocabulary` keeps only the
tokens the configured texts use plus the fallback pieces unseen or misspelled words need,
rebuilds the fast tokenizer with that vocabulary and slices the model's embedding (and MLM
output) rows to match. Text the trimmed tokenizer was built on is tokenized exactly as before,
and the model's outputs on it do not change.

Kept tokens:

- special and added tokens, and the ids the model config names (pad, bos, eos, sep);
- every token the tokenizer produces on `texts`;
- every single-character piece, with and without its word-boundary marker (`▁` for
  SentencePiece, `##` for WordPiece), of every script (Greek letters are medical symbols too),
  and the byte pieces of a byte-fallback Unigram: with them, any word made of characters the
  original tokenizer knew alone still tokenizes without the unknown token (a WordPiece word
  with one unmatched character becomes a whole `[UNK]`);
- the short pieces (<= `keep_short` characters, marker not counted) made of characters seen in
  `texts` or of Latin letters, which typos and new words fall back on in place of a string of
  single characters.

Supports tokenizers whose model is `Unigram` (SentencePiece: XLM-R, CamemBERT, e5) or
`WordPiece` (BERT), and any model whose vocabulary lives in `get_input_embeddings()` and
optionally `get_output_embeddings()` (BertModel, BertForMaskedLM, BertForTokenClassification,
XLM-R and CamemBERT classes).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from itertools import islice

import torch
from tokenizers import Tokenizer
from torch import nn

SENTENCEPIECE_MARKER = "▁"
# Tokenizer settings that name files or old token ids: the rebuilt tokenizer must not inherit
# them (it would reload the untrimmed vocabulary, or map ids of the old vocabulary).
_STALE_INIT_KWARGS = frozenset(
    {
        "vocab",
        "vocab_file",
        "merges",
        "merges_file",
        "tokenizer_file",
        "tokenizer_object",
        "added_tokens_decoder",
        "name_or_path",
        "is_local",
        "local_files_only",
        "_spm_precompiled_charsmap",
    }
)
_CONFIG_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id")
_ENCODE_BATCH = 512
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def _untruncated(tokenizer) -> Tokenizer:
    """A copy of the backend tokenizer that neither truncates nor pads: counting tokens must
    see the whole of every text."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def _batches(texts: Iterable[str], size: int = _ENCODE_BATCH) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(islice(iterator, size)):
        yield batch


def unk_rate(tokenizer, texts: Iterable[str]) -> float:
    """Fraction of the sub-tokens of `texts` (special tokens not added) that are the unknown
    token."""
    backend = _untruncated(tokenizer)
    unk_id = tokenizer.unk_token_id
    unknown = total = 0
    for batch in _batches(texts):
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            total += len(encoding.ids)
            unknown += sum(token_id == unk_id for token_id in encoding.ids)
    return unknown / total if total else 0.0


def _find_metaspace_marker(pre_tokenizer: dict | None) -> str:
    """The word-boundary replacement character of a (possibly nested) Metaspace pre-tokenizer."""
    if not pre_tokenizer:
        return SENTENCEPIECE_MARKER
    if pre_tokenizer.get("type") == "Metaspace":
        return pre_tokenizer.get("replacement", SENTENCEPIECE_MARKER)
    for inner in pre_tokenizer.get("pretokenizers", ()):
        marker = _find_metaspace_marker(inner)
        if marker != SENTENCEPIECE_MARKER:
            return marker
    return SENTENCEPIECE_MARKER


def _is_latin_or_common(char: str) -> bool:
    """ASCII (letters, digits, punctuation) or a Latin letter: what French typos produce."""
    return char.isascii() or unicodedata.name(char, "").startswith("LATIN")


def _texts_usage(backend: Tokenizer, texts: Iterable[str]) -> tuple[set[int], set[str]]:
    """The token ids `texts` tokenize to, and the characters they contain (normalised as the
    tokenizer's normaliser does, so they compare with vocabulary pieces)."""
    used_ids: set[int] = set()
    chars: set[str] = set()
    normalizer = backend.normalizer
    for batch in _batches(texts):
        for encoding in backend.encode_batch(batch, add_special_tokens=False):
            used_ids.update(encoding.ids)
        for text in batch:
            chars.update(text)
            if normalizer is not None:
                chars.update(normalizer.normalize_str(text))
    return used_ids, chars


def _remap_post_processor(processor: dict | None, old_to_new: dict[int, int]) -> None:
    """Rewrite, in place, the token ids a serialised post-processor inserts."""
    if not processor:
        return
    kind = processor.get("type")
    if kind == "Sequence":
        for inner in processor.get("processors", ()):
            _remap_post_processor(inner, old_to_new)
    elif kind == "TemplateProcessing":
        for special in processor.get("special_tokens", {}).values():
            special["ids"] = [old_to_new[token_id] for token_id in special["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, token_id = processor[key]
            processor[key] = [token, old_to_new[token_id]]


def _select(
    spec: dict,
    tokenizer,
    model,
    texts: Iterable[str],
    keep_short: int,
    keep_single_chars: bool,
) -> tuple[list[int], dict]:
    """Old ids to keep, in ascending order, and how many each rule selected (rules overlap)."""
    model_spec = spec["model"]
    if model_spec["type"] == "Unigram":
        pieces = [piece for piece, _ in model_spec["vocab"]]
        marker = _find_metaspace_marker(spec.get("pre_tokenizer"))
    elif model_spec["type"] == "WordPiece":
        pieces = [None] * (max(model_spec["vocab"].values()) + 1)
        for piece, token_id in model_spec["vocab"].items():
            pieces[token_id] = piece
        marker = model_spec["continuing_subword_prefix"]
    else:
        raise ValueError(
            f"vocabulary trimming supports Unigram and WordPiece tokenizers, "
            f"not {model_spec['type']}"
        )

    keep: set[int] = {token["id"] for token in spec.get("added_tokens", ())}
    keep.update(tokenizer.all_special_ids)
    keep.update(
        token_id
        for name in _CONFIG_TOKEN_IDS
        if isinstance(token_id := getattr(model.config, name, None), int)
    )
    if model_spec["type"] == "Unigram":
        # Unigram scores an unknown character as (lowest piece score - 10): keeping the lowest
        # piece keeps that penalty, so segmentations involving unknown characters do not change.
        scores = [score for _, score in model_spec["vocab"]]
        keep.add(min(range(len(scores)), key=scores.__getitem__))

    used_ids, text_chars = _texts_usage(_untruncated(tokenizer), texts)
    keep.update(used_ids)

    # With byte fallback, the <0xHH> pieces stand in for characters that have no piece.
    byte_fallback = bool(model_spec.get("byte_fallback"))
    single_char: set[int] = set()
    short: set[int] = set()
    for token_id, piece in enumerate(pieces):
        if piece is None:
            continue
        core = piece.removeprefix(marker)
        if len(core) <= 1 or (byte_fallback and _BYTE_PIECE.fullmatch(piece)):
            single_char.add(token_id)
        elif len(core) <= keep_short and all(
            char in text_chars or _is_latin_or_common(char) for char in core
        ):
            # Short pieces of other scripts are left out: French text (typos included) never
            # produces them, and their words still tokenize through single characters.
            short.add(token_id)
    if keep_single_chars:
        keep.update(single_char)
    keep.update(short)

    counts = {
        "kept_from_texts": len(used_ids),
        "kept_single_char": len(single_char) if keep_single_chars else 0,
        "kept_short": len(short),
    }
    return sorted(keep), counts


def _rebuild_tokenizer(spec: dict, tokenizer, kept: list[int], old_to_new: dict[int, int]):
    """The same transformers tokenizer class around a backend restricted to `kept` ids."""
    model_spec = spec["model"]
    if model_spec["type"] == "Unigram":
        vocab = model_spec["vocab"]
        model_spec["vocab"] = [vocab[i] for i in kept if i < len(vocab)]
        if model_spec.get("unk_id") is not None:
            model_spec["unk_id"] = old_to_new[model_spec["unk_id"]]
    else:
        model_spec["vocab"] = {
            piece: old_to_new[token_id]
            for piece, token_id in model_spec["vocab"].items()
            if token_id in old_to_new
        }
    for token in spec.get("added_tokens", ()):
        token["id"] = old_to_new[token["id"]]
    _remap_post_processor(spec.get("post_processor"), old_to_new)
    if spec.get("padding"):
        spec["padding"]["pad_id"] = old_to_new[spec["padding"]["pad_id"]]
    backend = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))

    # The embedding rows are sliced in `kept` order: a piece whose new id differs from its
    # position would silently read another token's vector.
    old_pieces = tokenizer.convert_ids_to_tokens(kept)
    for new_id, piece in enumerate(old_pieces):
        if backend.token_to_id(piece) != new_id:
            raise RuntimeError(f"rebuilt tokenizer maps token #{new_id} to another id")

    kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k not in _STALE_INIT_KWARGS}
    kwargs.update(tokenizer.special_tokens_map)
    kwargs["model_max_length"] = tokenizer.model_max_length
    trimmed = type(tokenizer)(tokenizer_object=backend, **kwargs)
    # Some classes (BertTokenizer, XLMRobertaTokenizer) write their own post-processor in
    # __init__; put back the original one, remapped.
    trimmed.backend_tokenizer.post_processor = backend.post_processor
    return trimmed


def _slice_rows(module: nn.Module, index: torch.Tensor, replaced: dict[int, nn.Parameter]) -> None:
    """Keep the `index` rows of a vocabulary-sized weight (and bias) of `module`, reusing the
    parameter already sliced when it is tied to one seen before."""
    for name in ("weight", "bias"):
        old = getattr(module, name, None)
        if old is None:
            continue
        if id(old) not in replaced:
            replaced[id(old)] = nn.Parameter(
                old.detach().index_select(0, index).clone(), requires_grad=old.requires_grad
            )
        setattr(module, name, replaced[id(old)])


def _remap_model(model, kept: list[int], old_to_new: dict[int, int]) -> None:
    """Slice the vocabulary rows of `model` in place and keep every tie between them."""
    input_embeddings = model.get_input_embeddings()
    index = torch.tensor(kept, dtype=torch.long, device=input_embeddings.weight.device)
    replaced: dict[int, nn.Parameter] = {}
    _slice_rows(input_embeddings, index, replaced)
    input_embeddings.num_embeddings = len(kept)
    if input_embeddings.padding_idx is not None:
        input_embeddings.padding_idx = old_to_new.get(input_embeddings.padding_idx)

    output_embeddings = model.get_output_embeddings()
    if output_embeddings is not None:
        _slice_rows(output_embeddings, index, replaced)
        output_embeddings.out_features = len(kept)
    # Heads keep the output bias twice (`cls.predictions.bias` is `decoder.bias`): point every
    # other holder of a replaced parameter at its sliced version so the ties survive.
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None and id(parameter) in replaced:
                module._parameters[name] = replaced[id(parameter)]

    model.config.vocab_size = len(kept)
    for name in _CONFIG_TOKEN_IDS:
        token_id = getattr(model.config, name, None)
        if isinstance(token_id, int):
            setattr(model.config, name, old_to_new[token_id])


def _count_parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def trim_vocabulary(
    model,
    tokenizer,
    texts: Iterable[str],
    *,
    keep_short: int = 2,
    keep_single_chars: bool = True,
):
    """Trim `model` (in place) and `tokenizer` to the vocabulary `texts` and their fallbacks use.

    Returns `(model, trimmed_tokenizer, stats)`; `stats` holds `vocab_before`/`vocab_after`
    (embedding rows), `params_before`/`params_after`, and the number of pieces each keep rule
    selected: `kept_from_texts`, `kept_single_char`, `kept_short` (rules overlap).
    `keep_short=0, keep_single_chars=False` keeps the corpus tokens only, which sends typos and
    unseen words to the unknown token: it exists to show why the fallback rules matter.
    """
    if keep_short < 0:
        raise ValueError(f"keep_short must be >= 0, got {keep_short}")
    vocab_before = model.get_input_embeddings().num_embeddings
    params_before = _count_parameters(model)
    spec = json.loads(tokenizer.backend_tokenizer.to_str())

    kept, counts = _select(spec, tokenizer, model, texts, keep_short, keep_single_chars)
    if kept[-1] >= vocab_before:
        raise ValueError(
            f"the tokenizer has token id {kept[-1]} but the model only {vocab_before} embeddings"
        )
    old_to_new = {old: new for new, old in enumerate(kept)}

    trimmed_tokenizer = _rebuild_tokenizer(spec, tokenizer, kept, old_to_new)
    _remap_model(model, kept, old_to_new)
    model.config.medistill_trimmed = {
        "vocab_before": vocab_before,
        "vocab_after": len(kept),
        "keep_short": keep_short,
    }
    stats = {
        "vocab_before": vocab_before,
        "vocab_after": len(kept),
        "params_before": params_before,
        "params_after": _count_parameters(model),
        **counts,
    }
    return model, trimmed_tokenizer, stats
