"""NER as text, for generative taggers: word-level IOB2 sentences <-> a linearised list of
`TYPE: mention` lines, chat prompts for prompted causal LMs, and the parse of a model's output
back to IOB2 tags on the sentence's own words.

A generative model writes mentions, not tags, and often not exactly as the sentence spells them:
without accents or case (an uncased tokenizer), with `l'état` for the words `l' état`, with
`latéro-cervicale` for `latéro - cervicale`. A mention is therefore aligned on a key of the
sentence without case, accents, spaces or apostrophe variants, and must start and end on word
boundaries. Every output line is accounted for in `ParseCounts`: parsed and aligned, not of the
`TYPE: mention` form, of an unknown type, not found in the sentence, or overlapping a mention
already placed. Nothing is dropped silently.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from medistill.data.french import strip_accents
from medistill.data.spans import tag_spans

NO_ENTITY = "aucune"  # the whole output for a sentence without entities
_LINE = re.compile(r"^\s*[-*•]?\s*([A-Za-z]+)\s*:\s*(.+?)\s*$")
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "ʼ": "'"})


def linearise(words: Sequence[str], tags: Sequence[str]) -> str:
    """The target a generative tagger learns: one `TYPE: mention` line per mention, in sentence
    order, the mention's words joined by spaces; `aucune` when there is none."""
    lines = [
        f"{tags[start][2:]}: {' '.join(words[start:end])}" for start, end in tag_spans(list(tags))
    ]
    return "\n".join(lines) or NO_ENTITY


def _fold(text: str) -> str:
    """Lower case, no accents, one apostrophe: the form outputs and sentences are matched in."""
    return strip_accents(unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).casefold())


def _key(words: Sequence[str]) -> tuple[str, list[int]]:
    """`words` folded and joined without spaces, and the word each character comes from."""
    chars, owner = [], []
    for index, word in enumerate(words):
        folded = "".join(_fold(word).split())
        chars.append(folded)
        owner.extend([index] * len(folded))
    return "".join(chars), owner


@dataclass
class ParseCounts:
    """What became of each line of the outputs parsed (summed over sentences)."""

    lines: int = 0
    aligned: int = 0
    malformed: int = 0  # not `TYPE: mention`
    unknown_type: int = 0
    not_found: int = 0  # the mention is not in the sentence
    overlapping: int = 0  # it overlaps a mention placed by an earlier line
    examples: list[str] = field(default_factory=list)  # a few malformed lines, for the log

    def add(self, other: ParseCounts) -> None:
        for name in ("lines", "aligned", "malformed", "unknown_type", "not_found", "overlapping"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.examples = (self.examples + other.examples)[:5]

    @classmethod
    def summed(cls, many: Sequence[ParseCounts]) -> ParseCounts:
        total = cls()
        for counts in many:
            total.add(counts)
        return total

    def unaligned(self) -> int:
        """Lines that name no mention of the sentence: scored as false positives."""
        return self.malformed + self.unknown_type + self.not_found

    def as_dict(self) -> dict:
        counts = {k: v for k, v in vars(self).items() if k != "examples"}
        counts["unparsed_share"] = (self.lines - self.aligned) / self.lines if self.lines else 0.0
        return counts


def parse_mentions(
    output: str, words: Sequence[str], entity_types: Sequence[str]
) -> tuple[list[str], ParseCounts]:
    """IOB2 tags for `words` from a generative tagger's `output`, and what became of its lines.

    Each `TYPE: mention` line tags every occurrence of the mention in the sentence that starts
    and ends on word boundaries and overlaps no mention placed before it (a model lists a
    repeated mention once; gold tags each occurrence)."""
    tags = ["O"] * len(words)
    counts = ParseCounts()
    key, owner = _key(words)
    starts = {i for i in range(len(owner)) if i == 0 or owner[i] != owner[i - 1]}
    types = {t.casefold(): t for t in entity_types}
    for line in output.splitlines():
        if not line.strip() or _fold(line.strip()) == NO_ENTITY:
            continue
        counts.lines += 1
        match = _LINE.match(line)
        if not match:
            counts.malformed += 1
            counts.examples.append(line[:80])
            continue
        entity_type = types.get(match.group(1).casefold())
        mention = "".join(_fold(match.group(2)).split())
        if not mention:
            counts.malformed += 1
            continue
        if entity_type is None:
            counts.unknown_type += 1
            continue
        placed = found = 0
        for position in (m.start() for m in re.finditer(f"(?={re.escape(mention)})", key)):
            end = position + len(mention)
            if position not in starts or (end < len(key) and end not in starts):
                continue
            found += 1
            span = range(owner[position], owner[end - 1] + 1)
            if any(tags[i] != "O" for i in span):
                continue
            for rank, i in enumerate(span):
                tags[i] = f"{'B' if rank == 0 else 'I'}-{entity_type}"
            placed += 1
        if placed:
            counts.aligned += 1
        elif found:
            counts.overlapping += 1
        else:
            counts.not_found += 1
    return tags, counts


# ---------------------------------------------------------------------------------------------
# Prompts for causal LMs


def few_shot_examples(train: Sequence[dict], shots: int, seed: int) -> list[dict]:
    """`shots` sentences of the train split, drawn with `seed`, half of them (rounded up) with
    an entity when the split has enough, so the examples show both outputs."""
    rng = random.Random(seed)
    tagged = [s for s in train if any(t != "O" for t in s["tags"])]
    untagged = [s for s in train if all(t == "O" for t in s["tags"])]
    with_entities = min(len(tagged), max(shots - len(untagged), (shots + 1) // 2))
    chosen = rng.sample(tagged, with_entities) + rng.sample(untagged, shots - with_entities)
    rng.shuffle(chosen)
    return chosen


def instruction(entity_types: dict[str, str]) -> str:
    """What the model is asked: the types with their French descriptions, the output format."""
    listing = "\n".join(f"- {name} : {description}" for name, description in entity_types.items())
    return (
        "Tu annotes des entités médicales dans des phrases cliniques en français.\n"
        f"Types d'entités :\n{listing}\n"
        "Réponds uniquement par une ligne `TYPE: mention` par entité, dans l'ordre de la phrase, "
        f"la mention recopiée telle qu'écrite ; réponds `{NO_ENTITY}` s'il n'y en a pas."
    )


def chat_messages(
    words: Sequence[str], entity_types: dict[str, str], examples: Sequence[dict]
) -> list[dict]:
    """The chat for one sentence: the instruction, each example as a user/assistant turn, then
    the sentence itself."""
    messages = [{"role": "system", "content": instruction(entity_types)}]
    for example in examples:
        messages.append({"role": "user", "content": " ".join(example["words"])})
        messages.append(
            {"role": "assistant", "content": linearise(example["words"], example["tags"])}
        )
    messages.append({"role": "user", "content": " ".join(words)})
    return messages


def completion_prompt(
    words: Sequence[str], entity_types: dict[str, str], examples: Sequence[dict]
) -> str:
    """The same request as plain text for a base model without a chat template: the
    instruction, each example as `Phrase :` / `Entités :` blocks separated by a blank line (the
    answer's stop string), then the sentence and an open `Entités :`."""
    blocks = [instruction(entity_types)]
    for example in examples:
        answer = linearise(example["words"], example["tags"])
        blocks.append(sentence_block(example["words"]) + answer)
    blocks.append(sentence_block(words))
    return "\n\n".join(blocks)


def sentence_block(words: Sequence[str]) -> str:
    """A sentence and the open `Entités :` line its answer follows: a base model's few-shot
    block, and the whole prompt of a causal LM fine-tuned to tag (`finetuned-llm`)."""
    return f"Phrase : {' '.join(words)}\nEntités :\n"
