"""Sentences of words -> model inputs: sub-token ids, the first sub-token of each word (where
word-level targets live), and padded batches."""

from __future__ import annotations

import torch


def encode_sentences(tokenizer, sentences: list[dict], max_length: int) -> list[dict]:
    """Tokenise words; mark the first sub-token of each word, where word-level targets live.

    Returns per sentence `input_ids` and `word_index` (the word a sub-token starts, or -1).
    """
    encoded = tokenizer(
        [s["words"] for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    features = []
    for i, sentence in enumerate(sentences):
        word_ids = encoded.word_ids(i)
        word_index = [
            w if w is not None and (j == 0 or word_ids[j - 1] != w) else -1
            for j, w in enumerate(word_ids)
        ]
        if sum(w >= 0 for w in word_index) != len(sentence["words"]):
            raise ValueError(
                f"sentence {sentence['id']}: {len(sentence['words'])} words do not fit in "
                f"max_length={max_length} sub-tokens; raise max_length or lower "
                "max_words_per_sentence"
            )
        features.append({"input_ids": encoded["input_ids"][i], "word_index": word_index})
    return features


def collate(features: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a batch; `word_index` is -1 on padding and on non-initial sub-tokens."""
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), width), dtype=torch.long)
    word_index = torch.full((len(features), width), -1, dtype=torch.long)
    for row, feature in enumerate(features):
        n = len(feature["input_ids"])
        input_ids[row, :n] = torch.tensor(feature["input_ids"])
        attention_mask[row, :n] = 1
        word_index[row, :n] = torch.tensor(feature["word_index"])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "word_index": word_index}


def length_batches(features: list[dict], batch_size: int) -> list[list[int]]:
    """Indices of `features` in batches of similar length, longest first, so that a batch pads
    to little more than its own sentences (corpus order pads short sentences to long ones);
    callers put each result back at its index, so outputs keep the input order."""
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def padded_tokens(features: list[dict], batches: list[list[int]]) -> int:
    """Token slots a forward pass computes over these batches, padding included."""
    return sum(len(batch) * max(len(features[i]["input_ids"]) for i in batch) for batch in batches)
