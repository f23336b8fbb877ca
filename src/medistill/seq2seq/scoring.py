"""Scores of generated text for the seq2seq task family (`medistill.seq2seq.pairs`), and the lead
baseline a teacher or student must beat.

- ROUGE-1, ROUGE-2 and ROUGE-L F-measures (`rouge-score`) on lower-cased words, accents kept.
- Entity faithfulness. Medical entities are runs of words that are a term of the project's
  lexicons (`medistill.data.lexicons`, train and held-out terms) or the surface of a gold entity of
  the source or the reference, matched with case, accents and œ/oe ignored, longest first.
  Recall: the share of the reference's entities found in the output. Precision: the share of the
  output's entities that are supported, i.e. are a source or reference entity or part of one
  ("pacemaker" of "pose de pacemaker"). Hallucinated: the output's entities that are not. Each
  counts distinct surfaces. Labels are only reported: a generated mention has no gold label to
  compare. An invented name that is in no lexicon and in no gold entity goes unseen.
- Exercise answerability: the answer of a generated exercise is grounded in its report. This
  checks grounding, not truth ("Non : pas de fièvre" where the report has fever is grounded);
  the reference answer (ROUGE) says whether it is right.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence

from rouge_score import rouge_scorer, tokenizers

from medistill.data.french import strip_accents
from medistill.data.lexicons import Lexicons, load_lexicons
from medistill.data.sentences import split_sentences
from medistill.seq2seq.pairs import EXERCISE, split_exercise

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
_WORD = re.compile(r"\w+")
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae"})


class _FrenchWords(tokenizers.Tokenizer):
    """Lower-cased words with their accents, for ROUGE.

    rouge-score's default tokenizer replaces every character outside [a-z0-9] by a space: French
    words lose their accented letters and fall apart ("hépatite" -> "h patite", "hépatique" ->
    "h patique"), so unrelated words share n-grams. Its stemmer stays off: it is English.
    """

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=1)
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=_FrenchWords())


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures of `prediction` against `reference`."""
    scores = _rouge_scorer().score(reference, prediction)  # rouge-score takes the reference first
    return {name: scores[name].fmeasure for name in ROUGE_TYPES}


def corpus_rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures over a corpus of prediction/reference pairs."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        raise ValueError("no prediction to score")
    scores = [rouge(p, r) for p, r in zip(predictions, references, strict=True)]
    return {name: sum(s[name] for s in scores) / len(scores) for name in ROUGE_TYPES}


# ---------------------------------------------------------------------------------------------
# Entities


def _matching_key(word: str) -> str:
    return strip_accents(word.casefold()).translate(_LIGATURES)


def _words(text: str) -> list[re.Match]:
    return list(_WORD.finditer(text))


def _key(text: str) -> tuple[str, ...]:
    """The words of `text` as they are matched: case, accents and œ/æ ligatures ignored."""
    return tuple(_matching_key(w.group()) for w in _words(unicodedata.normalize("NFC", text)))


def _contains(words: Sequence[str], run: Sequence[str]) -> bool:
    """Whether `run` occurs in `words` as consecutive words."""
    n = len(run)
    return n > 0 and any(tuple(words[i : i + n]) == tuple(run) for i in range(len(words) - n + 1))


def _lexicon_terms(lexicons: Lexicons) -> dict[tuple[str, ...], str]:
    terms: dict[tuple[str, ...], str] = {}
    for part in (lexicons.train, lexicons.heldout):
        for label, surfaces in part.items():
            for surface in surfaces:
                terms.setdefault(_key(surface), label)
    terms.pop((), None)
    return terms


@functools.lru_cache(maxsize=1)
def _default_lexicon_terms() -> dict[tuple[str, ...], str]:
    return _lexicon_terms(load_lexicons())


def medical_mentions(
    text: str, known_entities: Iterable[dict] = (), lexicons: Lexicons | None = None
) -> list[dict]:
    """The medical entities of `text`, `{"text", "label"}` in order: runs of words that are a
    lexicon term (the default lexicons unless `lexicons` is given) or the `"text"` of a known
    entity (its label wins), case, accents and œ/oe ignored, longest first, without overlap.
    Surfaces are taken from `text` in Unicode NFC."""
    lexicon = _default_lexicon_terms() if lexicons is None else _lexicon_terms(lexicons)
    known = {_key(e["text"]): e["label"] for e in known_entities}
    known.pop((), None)
    longest = max(max(map(len, lexicon), default=0), max(map(len, known), default=0))
    text = unicodedata.normalize("NFC", text)
    words = _words(text)
    keys = [_matching_key(w.group()) for w in words]
    mentions = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 0, -1):
            run = tuple(keys[i : i + n])
            label = known.get(run) or lexicon.get(run)
            if label:
                surface = text[words[i].start() : words[i + n - 1].end()]
                mentions.append({"text": surface, "label": label})
                i += n
                break
        else:
            i += 1
    return mentions


def entity_faithfulness(
    output: str,
    reference_entities: Sequence[dict],
    source_entities: Sequence[dict],
    lexicons: Lexicons | None = None,
) -> dict:
    """How faithful `output` is to the gold entities (`{"text", "label"}`, e.g. a pair's
    `target_entities` and `source_entities`): `entity_recall` (reference entities found in the
    output; None when the reference has none), `entity_precision` (output entities that are
    supported; None when the output has none), `hallucinated` (how many are not) and
    `hallucinated_entities` (which), with the counts behind them; entities are counted once per
    distinct surface (see the module docstring for the matching)."""
    output_words = _key(output)
    reference_keys = {_key(e["text"]) for e in reference_entities} - {()}
    found = sum(_contains(output_words, key) for key in reference_keys)
    known = [*source_entities, *reference_entities]
    known_keys = {_key(e["text"]) for e in known}
    distinct = {_key(m["text"]): m for m in medical_mentions(output, known, lexicons)}
    hallucinated = [
        mention
        for key, mention in distinct.items()
        if not any(_contains(known_key, key) for known_key in known_keys)
    ]
    supported = len(distinct) - len(hallucinated)
    return {
        "entity_recall": found / len(reference_keys) if reference_keys else None,
        "entity_precision": supported / len(distinct) if distinct else None,
        "hallucinated": len(hallucinated),
        "hallucinated_entities": hallucinated,
        "reference_entities": len(reference_keys),
        "reference_found": found,
        "output_entities": len(distinct),
        "output_supported": supported,
    }


# ---------------------------------------------------------------------------------------------
# Exercises, baseline, corpus


def exercise_answerable(
    exercise: str,
    source: str,
    source_entities: Sequence[dict] = (),
    lexicons: Lexicons | None = None,
) -> bool:
    """Whether the answer of a generated exercise (what follows "Réponse :", or the whole text)
    is supported by its report `source`: its words occur there as they are (case and accents
    ignored), or it names at least one medical entity and every one of them occurs there."""
    _, answer = split_exercise(exercise)
    answer_words = _key(answer)
    source_words = _key(source)
    if _contains(source_words, answer_words):
        return True
    mentions = medical_mentions(answer, source_entities, lexicons)
    return bool(mentions) and all(_contains(source_words, _key(m["text"])) for m in mentions)


def lead_baseline(source: str, n_sentences: int) -> str:
    """The first `n_sentences` sentences of a report (`data.sentences.split_sentences`, so header
    lines count), joined by spaces: the summary any model should beat."""
    if n_sentences < 1:
        raise ValueError(f"n_sentences must be >= 1, got {n_sentences}")
    return " ".join(source[start:end] for start, end in split_sentences(source)[:n_sentences])


def score_generations(
    pairs: Sequence[dict], outputs: Sequence[str], lexicons: Lexicons | None = None
) -> dict:
    """Corpus scores of `outputs`, one per pair (`medistill.seq2seq.pairs`), in order: `n`, mean
    `rouge1`, `rouge2`, `rougeL`; `entity_recall` and `entity_precision` pooled over the corpus
    (None without entities); `hallucinated_per_output`; `answerable`, the share of answerable
    exercises (None without exercise pairs). Pairs without gold entities (read from files) get
    the lexicon entities of their source and target instead."""
    scores = corpus_rouge(outputs, [pair["target"] for pair in pairs])
    totals = dict.fromkeys(
        ("reference_entities", "reference_found", "output_entities", "output_supported"), 0
    )
    hallucinated = 0
    answerable = []
    for pair, output in zip(pairs, outputs, strict=True):
        source_entities = pair["source_entities"]
        if source_entities is None:
            source_entities = medical_mentions(pair["source"], lexicons=lexicons)
        target_entities = pair["target_entities"]
        if target_entities is None:
            target_entities = medical_mentions(pair["target"], lexicons=lexicons)
        faithfulness = entity_faithfulness(output, target_entities, source_entities, lexicons)
        for name in totals:
            totals[name] += faithfulness[name]
        hallucinated += faithfulness["hallucinated"]
        if pair["task"] == EXERCISE:
            answerable.append(
                exercise_answerable(output, pair["source"], source_entities, lexicons)
            )
    return {
        "n": len(outputs),
        **scores,
        "entity_recall": (
            totals["reference_found"] / totals["reference_entities"]
            if totals["reference_entities"]
            else None
        ),
        "entity_precision": (
            totals["output_supported"] / totals["output_entities"]
            if totals["output_entities"]
            else None
        ),
        "hallucinated_per_output": hallucinated / len(outputs),
        "answerable": sum(answerable) / len(answerable) if answerable else None,
    }
