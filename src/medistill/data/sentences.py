"""French sentence splitting: character offsets of the sentences of a text."""

from __future__ import annotations

import re

# Titles: a period after them never ends a sentence ("Dr. Martin", "M. Dupont").
_TITLE_ABBREVIATIONS = frozenset(
    {"Dr", "Drs", "Pr", "Prs", "M", "MM", "Mme", "Mmes", "Mlle", "Mlles", "Me", "St", "Ste"}
)
# Other abbreviations: the period does not end a sentence when a lowercase word follows.
_ABBREVIATIONS = frozenset(
    {
        "mg", "g", "kg", "µg", "mcg", "ml", "mL", "l", "L", "cf", "etc", "ex", "p", "env",
        "vs", "cp", "cps", "gél", "amp", "inj", "sol", "j", "h", "min", "sem", "max", "fig",
        "tab", "vol", "n", "no", "cm", "mm", "ui", "UI", "av", "apr", "resp", "sup", "inf",
        "ant", "post", "tél", "cc",
    }
)  # fmt: skip
# Abbreviations after which the period never ends a sentence ("cf. Annexe 2", "et al. Ils").
_NEVER_FINAL = frozenset({"cf", "Cf", "vs", "al", "env", "Fig", "fig", "Tab", "coll"})
_END = re.compile(r"[.!?…]+(?:[\"')\]»]|[ \u00a0\u202f]»)*")
_LAST_WORD = re.compile(r"(\w+)\s*$")
_LINE = re.compile(r"[^\n]+")


def _is_boundary(line: str, start: int, end: int) -> bool:
    """Whether the punctuation run line[start:end] ends a sentence."""
    if end < len(line) and not line[end].isspace():
        return False  # "2.5", "12.03.2024", "p.ex."
    if line[start:end] != ".":
        return True
    m = _LAST_WORD.search(line, max(0, start - 40), start)  # a window: O(n) per line
    if m is None or m.end() != start:
        return True
    word = m.group(1)
    if word in _TITLE_ABBREVIATIONS or word in _NEVER_FINAL:
        return False
    if word == "ex" and line[max(0, m.start() - 8) : m.start()].rstrip().endswith("p."):
        return False  # "p. ex."
    rest = line[end:].lstrip()
    if not rest:
        return True
    if (rest[0].islower() or rest[0].isdigit()) and (
        word in _ABBREVIATIONS or word.lower() in _ABBREVIATIONS
    ):
        return False  # "mg. de", "fig. 2"
    return True


def split_sentences(text: str) -> list[tuple[int, int]]:
    """French sentence segmentation: `(start, end)` offsets of each whitespace-trimmed sentence.

    Splits after . ! ? (and …) followed by whitespace, and at newlines. Does not split after
    titles ("Dr.", "Pr.", "M.", "Mme."), after "p. ex.", after abbreviations ("mg.", "cf.",
    "etc.") followed by a lowercase word, nor inside numbers and dates ("2.5", "12.03.2024").
    """
    spans: list[tuple[int, int]] = []
    for line_match in _LINE.finditer(text):
        line = line_match.group(0)
        base = line_match.start()
        start = 0
        for m in _END.finditer(line):
            if _is_boundary(line, m.start(), m.end()):
                _add_span(spans, line, base, start, m.end())
                start = m.end()
        _add_span(spans, line, base, start, len(line))
    return spans


def _add_span(spans: list[tuple[int, int]], line: str, base: int, start: int, end: int) -> None:
    while start < end and line[start].isspace():
        start += 1
    while end > start and line[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((base + start, base + end))
