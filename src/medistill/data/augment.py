"""Span-preserving augmentation: typos, case changes, abbreviations and new concepts.

A document is cut into segments at its entity boundaries (text outside entities, then each
entity's text); every operation rewrites segments independently, and the document is put back
together with each entity covering its (rewritten) segment. So entity spans stay aligned with
the text they cover whatever an operation does to lengths and word counts, and no operation can
create a mention across an entity boundary.

Operations, each with its own rate (`augmentation` in the config):

- `typo_rate`: share of all words given one character typo (AZERTY neighbour, deletion,
  insertion, transposition, doubled letter, dropped accents). A typo never adds or removes a
  word boundary (only letters), so sentence-level IOB2 tags stay valid too.
- `case_rate`: share of all words whose case changes (lower <-> Capitalised, UPPER).
- `abbreviation_rate`: share of abbreviation candidates swapped: a lexicon long form becomes its
  short form ("hypertension artérielle" -> "HTA") and a short form its long form; when the long
  form is an entity's text, the entity now covers the short form.
- `new_concept_rate`: share of entity mentions replaced by a new name of the same type: a
  plausible novel name built from real morphology (drug stems -mab, -tinib, -vir, -prazole...,
  disease patterns -ite, -pathie, "maladie de X") or a held-out lexicon term.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medistill.core.io import read_json, read_jsonl, write_json, write_jsonl
from medistill.core.schema import with_schema_defaults
from medistill.data.corpus import corpus_statistics
from medistill.data.french import elides, strip_accents
from medistill.data.lexicons import load_lexicons
from medistill.data.spans import WORD

log = logging.getLogger("medistill")

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
RATE_KEYS = ("typo_rate", "case_rate", "abbreviation_rate", "new_concept_rate")
BUILTIN_ABBREVIATIONS = Path(__file__).resolve().parent / "lexicons" / "abbreviations.tsv"


def is_typo_target(word: str) -> bool:
    """Only alphabetic words of 3+ letters: typos in numbers or punctuation change meaning."""
    return len(word) >= 3 and word.isalpha()


def is_case_target(word: str) -> bool:
    return len(word) >= 2 and word.isalpha() and word.lower() != word.upper()


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
            new = strip_accents(word)
        else:
            continue
        if new != word:
            return new
    return word[:-1]


def change_case(word: str, rng: random.Random) -> str:
    """Another casing of `word`: lower, Capitalised or UPPER (never the same)."""
    options = [w for w in (word.lower(), word.capitalize(), word.upper()) if w != word]
    return rng.choice(options) if options else word


def _perturb_words(words: list[str], rate: float, rng, is_target, change) -> list[str]:
    targets = [i for i, w in enumerate(words) if is_target(w)]
    if not targets or rate <= 0:
        return list(words)
    p = min(1.0, rate * len(words) / len(targets))
    noisy = list(words)
    for i in targets:
        if rng.random() < p:
            noisy[i] = change(words[i], rng)
    return noisy


def typo_words(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Give a typo to about `rate` of all words, drawn among the words that can take one."""
    return _perturb_words(words, rate, rng, is_typo_target, typo)


def case_words(words: list[str], rate: float, rng: random.Random) -> list[str]:
    """Change the case of about `rate` of all words, drawn among the words that have case."""
    return _perturb_words(words, rate, rng, is_case_target, change_case)


# --------------------------------------------------------------------------------------------
# Abbreviation lexicons
# --------------------------------------------------------------------------------------------

_STOPWORDS = frozenset(
    "a au aux ce ces de des du en et il la le les ou par pas pour qui sa se son sur un une".split()
)


@dataclass
class AbbreviationLexicon:
    """Short form <-> long form pairs; looked up word by word (no giant regex)."""

    pairs: list[tuple[str, str]]
    _short_to_long: dict[str, str] = field(init=False, repr=False)
    _lower_short_to_long: dict[str, str] = field(init=False, repr=False)
    _long_by_first: dict[str, list[tuple[str, str]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._short_to_long, self._lower_short_to_long, self._long_by_first = {}, {}, {}
        long_seen: set[str] = set()
        for short, long in self.pairs:
            if WORD.fullmatch(short):
                self._short_to_long.setdefault(short, long)
                if short.islower():
                    self._lower_short_to_long.setdefault(short, long)
            key = long.lower()
            if key in long_seen or len(key) != len(long):
                continue
            long_seen.add(key)
            first = WORD.match(key)
            if first:
                self._long_by_first.setdefault(first.group(0), []).append((key, short))
        for forms in self._long_by_first.values():
            forms.sort(key=lambda item: -len(item[0]))

    def __len__(self) -> int:
        return len(self.pairs)

    def candidates(self, text: str) -> list[tuple[int, int, str, bool]]:
        """Non-overlapping `(start, end, replacement, shortens)`: long forms (longest first,
        any case) to their short form, and short forms (exact, or an all-caps form of a
        lower-case short form) to their long form."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a rare character whose lower case changes length
            lowered = text
        found, cursor = [], 0
        for m in WORD.finditer(text):
            if m.start() < cursor:
                continue
            word = m.group(0)
            for long, short in self._long_by_first.get(word.lower(), ()):
                end = m.start() + len(long)
                if lowered.startswith(long, m.start()) and (
                    end == len(text) or not (text[end].isalnum() or text[end] == "_")
                ):
                    found.append((m.start(), end, short, True))
                    cursor = end
                    break
            else:
                long = self._short_to_long.get(word)
                if long is None and word.isupper():
                    long = self._lower_short_to_long.get(word.lower())
                if long is not None:
                    found.append((m.start(), m.end(), long, False))
                    cursor = m.end()
        return found


def read_abbreviation_file(path: str | Path) -> list[tuple[str, str]]:
    """Pairs from a TSV (columns `short`/`long` or `shortForm`/`longForm`, a header line) or
    the JSON sense inventory of github.com/scossin/abbreviations (preferred and alternative
    labels). Filtered to usable pairs: a short form of 2-12 characters that is not a French
    stop word, a long form of at most 6 words and 60 characters, without parentheses."""
    path = Path(path)
    pairs: list[tuple[str, str]] = []
    if path.suffix == ".json":
        for entry in json.loads(path.read_text(encoding="utf-8")):
            for sense in entry.get("senses", []):
                pairs += [(entry["shortForm"], sense["pref_label"])]
                pairs += [(entry["shortForm"], alt) for alt in sense.get("alt_labels", [])]
    else:
        lines = [
            line
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        ]
        reader = csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
        names = {n.lower(): n for n in reader.fieldnames or []}
        short_key = names.get("short") or names.get("shortform")
        long_key = names.get("long") or names.get("longform")
        if not short_key or not long_key:
            raise ValueError(
                f"{path}: no `short`/`long` (or `shortForm`/`longForm`) header; add a header "
                "line naming the two columns"
            )
        pairs = [(row[short_key] or "", row[long_key] or "") for row in reader]
    usable = []
    for short, long in pairs:
        short, long = unicodedata.normalize("NFC", short.strip()), long.strip()
        long = unicodedata.normalize("NFC", long)
        if not 2 <= len(short) <= 12 or short.lower() in _STOPWORDS or not long:
            continue
        if len(long.split()) > 6 or len(long) > 60 or "(" in long or long.lower() == short.lower():
            continue
        usable.append((short, long))
    return usable


def load_abbreviations(extra: list[str] | tuple[str, ...] = ()) -> AbbreviationLexicon:
    """The built-in lexicon plus external ones; a missing external file is skipped (logged)."""
    pairs = read_abbreviation_file(BUILTIN_ABBREVIATIONS)
    for path in extra:
        if not Path(path).expanduser().exists():
            log.warning("abbreviation lexicon %s not found; skipped", path)
            continue
        pairs += read_abbreviation_file(Path(path).expanduser())
    return AbbreviationLexicon(pairs)


# --------------------------------------------------------------------------------------------
# New concepts: novel names from real morphology, or held-out lexicon terms
# --------------------------------------------------------------------------------------------

_SYLLABLES = (
    "ba", "da", "ce", "fi", "lo", "mo", "ne", "ri", "so", "ta", "vi", "ze", "pra", "tro",
    "cli", "dul", "ger", "lu", "nor", "vel", "ca", "mi", "xa", "tal",
)  # fmt: skip
_DRUG_STEMS = (
    "mab", "tinib", "vir", "prazole", "sartan", "pril", "olol", "statine", "ciclib", "gliptine",
    "floxacine", "cilline", "azépam", "dipine", "parine", "xaban", "gatran", "setron",
)  # fmt: skip
_MAB_INFIXES = ("xi", "zu", "li", "ci", "tu", "ki")
_ROOTS = (  # (combining form, bare root)
    ("néphro", "néphr"), ("hépato", "hépat"), ("cardio", "cardi"), ("myélo", "myél"),
    ("neuro", "neur"), ("gastro", "gastr"), ("arthro", "arthr"), ("dermato", "dermat"),
    ("pneumo", "pneum"), ("cholangio", "cholang"), ("spondylo", "spondyl"), ("myo", "my"),
    ("encéphalo", "encéphal"), ("ostéo", "ostéo"), ("colo", "col"), ("pancréato", "pancréat"),
)  # fmt: skip
_DISEASE_ADJ = (
    "chronique", "aiguë", "auto-immune", "idiopathique", "héréditaire", "nodulaire",
    "granulomateuse", "fibrosante", "récidivante", "interstitielle",
)  # fmt: skip
_ANAT_NOUNS = ("muscle", "ligament", "nerf", "tendon", "ganglion", "fascia", "canal")
_ANAT_PREFIXES = ("sus-", "sous-", "rétro-", "para-", "pré-", "inter-")
_ANAT_BONES = (
    "scapulaire", "claviculaire", "costal", "sternal", "tibial", "ulnaire", "radial",
    "fibulaire", "vertébral", "hyoïdien", "pubien", "calcanéen",
)  # fmt: skip


def _surname(rng: random.Random) -> str:
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return name.capitalize() + rng.choice(("", "n", "t", "r", "x", "mann", "ier"))


def novel_name(label: str, rng: random.Random) -> str:
    """A plausible name no lexicon holds, built from the morphology of its entity type."""
    if label == "CHEM":
        head = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 2)))
        if rng.random() < 0.25:
            return head + rng.choice(_MAB_INFIXES) + "mab"
        return head + rng.choice(_DRUG_STEMS)
    combining, bare = rng.choice(_ROOTS)
    if label == "DISO":
        pattern = rng.randrange(4)
        if pattern == 0:
            return f"{bare}ite {rng.choice(_DISEASE_ADJ)}"
        if pattern == 1:
            return f"{combining}pathie {rng.choice(_DISEASE_ADJ)}"
        if pattern == 2:
            return f"{rng.choice(('maladie', 'syndrome'))} de {_surname(rng)}"
        return f"{combining}{rng.choice(('sclérose', 'dysplasie', 'fibrose'))}"
    if label == "SOSY":
        return combining + rng.choice(("algie", "dynie", "rragie", "plégie"))
    if label == "PROC":
        return rng.choice(
            (f"{combining}scopie", f"{combining}graphie", f"{bare}ectomie", f"{combining}tomie")
        )
    return f"{rng.choice(_ANAT_NOUNS)} {rng.choice(_ANAT_PREFIXES)}{rng.choice(_ANAT_BONES)}"


# --------------------------------------------------------------------------------------------
# Documents
# --------------------------------------------------------------------------------------------


def _segments(doc: dict) -> list[list]:
    """`[text, entity_index or None, edited]` pieces: outside text and each entity's text."""
    text, segments, cursor = doc["text"], [], 0
    for index, entity in enumerate(doc.get("entities", ())):
        segments.append([text[cursor : entity["start"]], None, False])
        segments.append([text[entity["start"] : entity["end"]], index, False])
        cursor = entity["end"]
    segments.append([text[cursor:], None, False])
    return segments


def _join(segments: list[list], doc: dict, suffix: str) -> dict:
    pieces, entities, length = [], list(doc.get("entities", ())), 0
    entities = [dict(e) for e in entities]
    for text, index, _ in segments:
        if index is not None:
            entities[index]["start"], entities[index]["end"] = length, length + len(text)
        pieces.append(text)
        length += len(text)
    copy = {**doc, "id": f"{doc['id']}{suffix}", "text": "".join(pieces)}
    if "entities" in doc:
        copy["entities"] = entities
    return copy


@dataclass
class Augmenter:
    """Applies the configured operations to documents and counts what it did."""

    typo_rate: float = 0.0
    case_rate: float = 0.0
    abbreviation_rate: float = 0.0
    new_concept_rate: float = 0.0
    abbreviations: AbbreviationLexicon | None = None
    abbreviation_direction: str = "both"  # both | shorten | expand
    new_concept_source: str = "generated"  # generated | heldout | mixed
    heldout_fraction: float = 0.2
    counts: Counter = field(default_factory=Counter)

    @classmethod
    def from_spec(cls, spec: dict) -> Augmenter:
        spec = with_schema_defaults(spec, "augmentation")
        rates = {k: float(spec.get(k, 0.0)) for k in RATE_KEYS}
        lexicon = None
        if rates["abbreviation_rate"] > 0:
            lexicon = load_abbreviations(spec.get("abbreviation_lexicons", ()))
        return cls(
            **rates,
            abbreviations=lexicon,
            new_concept_source=spec["new_concept_source"],
            heldout_fraction=spec.get("heldout_fraction", 0.2),
        )

    def measured_rates(self) -> dict[str, float]:
        c = self.counts

        def ratio(a: str, b: str) -> float:
            return c[a] / c[b] if c[b] else 0.0

        return {
            "typo": ratio("typo_changed", "words"),
            "case": ratio("case_changed", "words"),
            "abbreviation": ratio("abbreviation_swapped", "abbreviation_candidates"),
            "new_concept": ratio("new_concept_replaced", "entities"),
        }

    def _new_term(self, label: str, rng: random.Random) -> str:
        source = self.new_concept_source
        if source == "heldout" or (source == "mixed" and rng.random() < 0.5):
            terms = load_lexicons(self.heldout_fraction).heldout.get(label)
            if terms:
                return rng.choice(terms)
        return novel_name(label, rng)

    def _new_concepts(self, segments: list[list], doc: dict, rng: random.Random) -> set[int]:
        """Replace mentions; return the indices of the entities replaced."""
        entities, replaced = doc.get("entities", ()), set()
        self.counts["entities"] += len(entities)
        for k, segment in enumerate(segments):
            text, index, _ = segment
            if index is None or rng.random() >= self.new_concept_rate:
                continue
            term = self._new_term(entities[index]["label"], rng)
            if text[:1].isupper() and not text[:2].isupper():
                term = term[0].upper() + term[1:]
            segment[0], segment[2] = term, True
            replaced.add(index)
            self.counts["new_concept_replaced"] += 1
            before = segments[k - 1]  # always an outside segment
            if before[0].endswith((" d'", "\nd'")) or before[0] == "d'":
                if not elides(term):
                    before[0] = before[0][:-2] + "de "
            elif before[0].endswith((" de ", "\nde ")) or before[0] == "de ":
                if elides(term):
                    before[0] = before[0][:-3] + "d'"
        return replaced

    def _abbreviate(self, segments: list[list], rng: random.Random) -> None:
        for segment in segments:
            text = segment[0]
            found = self.abbreviations.candidates(text) if text else []
            if self.abbreviation_direction != "both":
                shorten = self.abbreviation_direction == "shorten"
                found = [c for c in found if c[3] == shorten]
            if not found:
                continue
            self.counts["abbreviation_candidates"] += len(found)
            pieces, cursor = [], 0
            for start, end, replacement, _ in found:
                if rng.random() >= self.abbreviation_rate:
                    continue
                pieces += [text[cursor:start], replacement]
                cursor = end
                segment[2] = True
                self.counts["abbreviation_swapped"] += 1
            segment[0] = "".join(pieces) + text[cursor:]

    def _words(self, segments: list[list], rng: random.Random) -> None:
        spans = [(k, m.span()) for k, s in enumerate(segments) for m in WORD.finditer(s[0])]
        words = [segments[k][0][a:b] for k, (a, b) in spans]
        self.counts["words"] += len(words)
        for rate, function, key in (
            (self.case_rate, case_words, "case_changed"),
            (self.typo_rate, typo_words, "typo_changed"),
        ):
            if rate <= 0:
                continue
            new = function(words, rate, rng)
            self.counts[key] += sum(a != b for a, b in zip(words, new, strict=True))
            words = new
        rebuilt: dict[int, list[str]] = {}
        cursors: dict[int, int] = {}
        for (k, (a, b)), word in zip(spans, words, strict=True):
            text = segments[k][0]
            rebuilt.setdefault(k, []).extend((text[cursors.get(k, 0) : a], word))
            cursors[k] = b
        for k, pieces in rebuilt.items():
            segments[k][0] = "".join(pieces) + segments[k][0][cursors[k] :]

    def __call__(self, doc: dict, rng: random.Random, suffix: str = "~aug") -> dict:
        """A noisy copy of `doc` (id + `suffix`), its entity spans moved with their text."""
        segments, replaced = _segments(doc), set()
        if self.new_concept_rate > 0 and doc.get("entities"):
            replaced = self._new_concepts(segments, doc, rng)
        else:
            self.counts["entities"] += len(doc.get("entities", ()))
        if self.abbreviation_rate > 0 and self.abbreviations is not None:
            self._abbreviate(segments, rng)
        self._words(segments, rng)
        copy = _join(segments, doc, suffix)
        for index in replaced:
            copy["entities"][index]["novel"] = True
        return copy


def augment_corpus(
    docs: list[dict], typo_rate: float, noisy_copies: int, seed: int, **rates: float
) -> tuple[list[dict], dict[str, float]]:
    """Clean documents followed by `noisy_copies` augmented copies of each; and the measured
    rate of each operation. `rates` may hold `case_rate`, `abbreviation_rate`,
    `new_concept_rate` and the other `Augmenter.from_spec` settings."""
    augmenter = Augmenter.from_spec({"typo_rate": typo_rate, **rates})
    rng = random.Random(seed)
    out = list(docs)
    for copy_index in range(noisy_copies):
        for doc in docs:
            out.append(augmenter(doc, rng, suffix=f"~aug{copy_index}"))
    return out, augmenter.measured_rates()


def augment_corpus_file(spec: dict, docs_path, build_stats_path, out_path, stats_path) -> dict:
    """Read a corpus, add its augmented copies; write them and the corpus statistics (the
    build's, with `augmentation`: settings and measured rate of each operation)."""
    spec = with_schema_defaults(spec, "augmentation")
    docs = read_jsonl(docs_path)
    settings = {k: v for k, v in spec.items() if k not in ("noisy_copies", "seed", "typo_rate")}
    augmented, rates = augment_corpus(
        docs,
        typo_rate=spec.get("typo_rate", 0.0),
        noisy_copies=spec.get("noisy_copies", 0),
        seed=spec["seed"],
        **settings,
    )
    write_jsonl(augmented, out_path)
    stats = read_json(build_stats_path)
    stats["augmentation"] = {
        "settings": spec,
        "measured_rates": rates,
        "n_docs_in": len(docs),
        "n_docs_out": len(augmented),
        "augmented_corpus": corpus_statistics(augmented) if spec.get("noisy_copies") else None,
    }
    write_json(stats, stats_path)
    return stats
