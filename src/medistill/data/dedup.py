"""Deduplication of documents: exact repeats, or texts that differ only in case, accents,
punctuation and spacing."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")
_COMBINING = re.compile("[\u0300-\u036f]+")


def dedup_key(text: str) -> str:
    """The normalised text two near-identical documents share: case, accents, punctuation and
    spacing removed."""
    decomposed = unicodedata.normalize("NFD", text.casefold())
    return _NON_WORD.sub(" ", _COMBINING.sub("", decomposed)).strip()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class Deduplicator:
    """Remembers what it has seen (as 16-byte digests, so millions of documents fit): `exact`
    drops a repeated text, `normalised` also a repeated `dedup_key`; `none` keeps everything."""

    def __init__(self, mode: str = "normalised"):
        if mode not in ("none", "exact", "normalised"):
            raise ValueError(f"dedup must be none, exact or normalised, got {mode!r}")
        self.mode = mode
        self.removed = {"exact": 0, "normalised": 0}
        self._exact: set[bytes] = set()
        self._normalised: set[bytes] = set()

    def keep(self, text: str) -> bool:
        if self.mode == "none":
            return True
        key = _digest(text)
        if key in self._exact:
            self.removed["exact"] += 1
            return False
        self._exact.add(key)
        if self.mode == "normalised":
            key = _digest(dedup_key(text))
            if key in self._normalised:
                self.removed["normalised"] += 1
                return False
            self._normalised.add(key)
        return True


def deduplicate(docs: list[dict], mode: str = "normalised") -> tuple[list[dict], dict]:
    """Drop repeated documents, keeping the first; return them and the counts removed."""
    dedup = Deduplicator(mode)
    return [d for d in docs if dedup.keep(d["text"])], dedup.removed
