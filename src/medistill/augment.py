"""Span-preserving noise: character typos applied word by word.

A typo never adds or removes a word boundary (only letters are inserted), so IOB2 tags of a
sentence and entity spans of a document stay valid after augmentation.
"""

from __future__ import annotations

import random
import unicodedata

from medistill.tasks import WORD

# Neighbours on a French AZERTY keyboard: the typos people really make on hospital PCs.
AZERTY_ROWS = ("azertyuiop", "qsdfghjklm", "wxcvbn")
NEIGHBOURS = {
    key: "".join(
        AZERTY_ROWS[r][j]
        for r in range(len(AZERTY_ROWS))
        for j in range(len(AZERTY_ROWS[r]))
        if abs(r - row) <= 1 and abs(j - col) <= 1 and (r, j) != (row, col)
    )
    for row, keys in enumerate(AZERTY_ROWS)
    for col, key in enumerate(keys)
}
OPERATIONS = ("neighbour", "delete", "insert", "transpose", "double", "drop_accent")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def is_typo_target(word: str) -> bool:
    """Only alphabetic words of 3+ letters: typos in numbers or punctuation change meaning."""
    return len(word) >= 3 and word.isalpha()


def typo(word: str, rng: random.Random) -> str:
    """One random typo; the result is still a non-empty alphabetic word, different from input."""
    for _ in range(10):
        operation = rng.choice(OPERATIONS)
        i = rng.randrange(len(word))
        if operation == "neighbour" and word[i].lower() in NEIGHBOURS:
            new = word[:i] + rng.choice(NEIGHBOURS[word[i].lower()]) + word[i + 1 :]
        elif operation == "delete":
            new = word[:i] + word[i + 1 :]
        elif operation == "insert":
            new = word[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + word[i:]
        elif operation == "transpose" and i + 1 < len(word):
            new = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif operation == "double":
            new = word[:i] + word[i] + word[i:]
        elif operation == "drop_accent":
            new = _strip_accents(word)
        else:
            continue
        if new != word:
            return new
    return word[:-1]


def typo_words(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Give a typo to about `rate` of all words, drawn among the words that can take one."""
    targets = [i for i, w in enumerate(words) if is_typo_target(w)]
    if not targets:
        return list(words)
    p = min(1.0, rate * len(words) / len(targets))
    noisy = list(words)
    for i in targets:
        if rng.random() < p:
            noisy[i] = typo(words[i], rng)
    return noisy


def augment_document(doc: dict, rate: float, rng: random.Random, suffix: str) -> dict:
    """A noisy copy of a document, its entity offsets moved with the text they cover."""
    text = doc["text"]
    spans = [m.span() for m in WORD.finditer(text)]
    noisy = typo_words([text[a:b] for a, b in spans], rate, rng)
    pieces, new_start, new_end, cursor, length = [], {}, {}, 0, 0
    for (a, b), word in zip(spans, noisy, strict=True):
        pieces.append(text[cursor:a])
        length += a - cursor
        new_start[a] = length
        pieces.append(word)
        length += len(word)
        new_end[b] = length
        cursor = b
    pieces.append(text[cursor:])
    copy = {**doc, "id": f"{doc['id']}{suffix}", "text": "".join(pieces)}
    if "entities" in doc:
        copy["entities"] = [
            {**e, "start": new_start[e["start"]], "end": new_end[e["end"]]} for e in doc["entities"]
        ]
    return copy


def augment_corpus(docs: list[dict], typo_rate: float, noisy_copies: int, seed: int):
    """Clean documents followed by `noisy_copies` typo'd copies of each; and the measured rate."""
    rng = random.Random(seed)
    out = list(docs)
    changed = total = 0
    for copy_index in range(noisy_copies):
        for doc in docs:
            noisy = augment_document(doc, typo_rate, rng, suffix=f"~typo{copy_index}")
            before = WORD.findall(doc["text"])
            after = WORD.findall(noisy["text"])
            changed += sum(x != y for x, y in zip(before, after, strict=True))
            total += len(before)
            out.append(noisy)
    return out, {"typo": changed / total if total else 0.0}


def augment_corpus_file(spec: dict, docs_path, out_path, stats_path) -> dict:
    """Read a corpus, add its noisy copies, write them and the measured operation rates."""
    from medistill.corpus import read_jsonl, write_jsonl
    from medistill.io import write_json

    docs = read_jsonl(docs_path)
    augmented, rates = augment_corpus(
        docs,
        typo_rate=spec.get("typo_rate", 0.0),
        noisy_copies=spec.get("noisy_copies", 0),
        seed=spec.get("seed", 0),
    )
    write_jsonl(augmented, out_path)
    stats = {
        "n_docs_in": len(docs),
        "n_docs_out": len(augmented),
        "measured_rates": rates,
        "settings": spec,
    }
    write_json(stats, stats_path)
    return stats
