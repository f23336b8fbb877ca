"""Synthetic French clinical reports with gold entity spans: the default offline corpus.

Hospital reports generated from templates and the lexicons of `medistill.data.lexicons`. Generation
uses pre-parsed templates and precomputed offsets (no regex at generation time) and is
deterministic: document `i` depends only on `(seed, vocabulary, i)`.
"""

from __future__ import annotations

import datetime as _dt
import random
import re
from collections.abc import Iterable

from medistill.data.french import ARTICLES, GENDERED_MODES, article, elides, noun_gender
from medistill.data.lexicons import LABELS, Lexicons, common_terms, load_lexicons
from medistill.data.report_templates import HEADERS, MIDDLE_SECTION_PROBS, SECTIONS

SOURCE = "synthetic"
# Generated text mixes edsnlp resources (BSD-3-Clause) and this code (Apache-2.0).
SYNTHETIC_LICENCE = "BSD-3-Clause AND Apache-2.0"

# Probability that a DISO/CHEM mention is drawn from the common hand list rather than the
# whole lexicon (which is dominated by rare CIM-10 codes and rare molecules).
_P_COMMON = {"DISO": 0.45, "CHEM": 0.5, "SOSY": 0.0, "ANAT": 0.0, "PROC": 0.0}
_SOFT_MAX_ENTITIES = 18  # past this, sections get only their first sentence


# --------------------------------------------------------------------------------------------
# Template parsing (the templates are in `medistill.data.report_templates`)
# --------------------------------------------------------------------------------------------

_LIT, _ENT, _LIST, _RX, _FILL = range(5)
_SLOT = re.compile(r"\{([^{}]+)\}")


def _parse_template(template: str) -> tuple[tuple, ...]:
    tokens: list[tuple] = []
    pos = 0
    for m in _SLOT.finditer(template):
        if m.start() > pos:
            tokens.append((_LIT, template[pos : m.start()]))
        slot = m.group(1)
        mode, _, label = slot.rpartition(":")
        if not mode and slot.startswith("^"):
            mode, label = "^", slot[1:]
        if label in LABELS and mode in ("list", "list^"):
            tokens.append((_LIST, label, mode == "list^"))
        elif label in LABELS:
            if mode not in ("", "^", "de", *ARTICLES):
                raise ValueError(f"unknown slot mode {mode!r} in template {template!r}")
            tokens.append((_ENT, label, mode, GENDERED_MODES.get(mode)))
        elif slot == "rxlist":
            tokens.append((_RX,))
        elif slot in _FILLERS:
            tokens.append((_FILL, _FILLERS[slot]))
        else:
            raise ValueError(f"unknown slot {slot!r} in template {template!r}")
        pos = m.end()
    if pos < len(template):
        tokens.append((_LIT, template[pos:]))
    return tuple(tokens)


# --------------------------------------------------------------------------------------------
# Fillers (numbers, dates, names): functions of (rng, doc context)
# --------------------------------------------------------------------------------------------

_SERVICES = (
    "cardiologie", "pneumologie", "médecine interne", "gastro-entérologie", "néphrologie",
    "neurologie", "endocrinologie", "maladies infectieuses", "gériatrie", "chirurgie digestive",
    "chirurgie orthopédique", "réanimation médicale", "rhumatologie", "hématologie", "urologie",
    "oncologie médicale", "médecine polyvalente", "soins intensifs de cardiologie",
)  # fmt: skip
_DOCTORS = (
    "Dr Martin", "Dr. Bernard", "Dr Dubois", "Pr Lefèvre", "Dr. Moreau", "Dr Laurent",
    "Pr. Girard", "Dr Roux", "Dr Fournier", "Dr. Mercier", "Pr Garnier", "Dr Chevalier",
)  # fmt: skip
_DURATIONS = (
    "2 jours", "3 jours", "5 jours", "une semaine", "8 jours", "10 jours", "15 jours",
    "3 semaines", "un mois", "2 mois", "3 mois", "6 mois", "48 heures", "24 heures",
)  # fmt: skip
_DOSES = (
    "500 mg", "1 g", "2 g", "5 mg", "10 mg", "20 mg", "40 mg", "75 mg", "100 mg", "250 mg",
    "2,5 mg", "1,25 mg", "0,5 mg", "80 mg", "160 mg", "4000 UI", "6000 UI", "50 µg", "1 cp",
    "2 cp", "1 sachet", "30 mg", "200 mg", "400 mg",
)  # fmt: skip
_FREQUENCIES = (
    "1 fois par jour", "2 fois par jour", "3 fois par jour", "matin et soir", "le soir",
    "le matin", "toutes les 8 heures", "toutes les 6 heures si douleur", "par jour",
    "x 3/j", "en une prise", "pendant 7 jours", "à la demande",
)  # fmt: skip
_ROUTES = ("", "", "", " per os", " en IV", " en sous-cutané")
_LABS = (
    lambda r: f"CRP à {r.randint(2, 280)} mg/L",
    lambda r: f"hémoglobine à {r.randint(7, 16)},{r.randint(0, 9)} g/dL",
    lambda r: f"leucocytes à {r.randint(2, 25)},{r.randint(0, 9)} G/L",
    lambda r: f"créatinine à {r.randint(45, 420)} µmol/L",
    lambda r: f"kaliémie à {r.randint(2, 6)},{r.randint(0, 9)} mmol/L",
    lambda r: f"natrémie à {r.randint(121, 148)} mmol/L",
    lambda r: f"troponine à {r.randint(3, 2500)} ng/L",
    lambda r: f"NT-proBNP à {r.randint(50, 9000)} pg/mL",
    lambda r: f"plaquettes à {r.randint(40, 600)} G/L",
    lambda r: f"HbA1c à {r.randint(5, 11)},{r.randint(0, 9)} %",
    lambda r: f"lactates à {r.randint(0, 6)},{r.randint(1, 9)} mmol/L",
)


def _vitals(rng: random.Random, ctx: dict) -> str:
    parts = [
        f"TA {rng.randint(95, 175)}/{rng.randint(50, 100)} mmHg",
        f"FC {rng.randint(48, 130)} bpm",
        f"SpO2 {rng.randint(86, 100)} % en air ambiant",
        f"température {rng.randint(36, 39)},{rng.randint(0, 9)} °C",
        f"FR {rng.randint(12, 32)}/min",
    ]
    keep = sorted(rng.sample(range(5), rng.randint(2, 4)))
    text = ", ".join(parts[i] for i in keep)
    return rng.choice(("", "À l'entrée : ", "Constantes : ")) + (
        text if not text[0].islower() else text[0].upper() + text[1:]
    )


def _lab(rng: random.Random, ctx: dict) -> str:
    return ", ".join(f(rng) for f in rng.sample(_LABS, rng.randint(1, 3)))


def _de(word: str) -> str:
    return f"d'{word}" if elides(word) else f"de {word}"


def _format_day(day: int) -> str:
    return _dt.date.fromordinal(day).strftime("%d/%m/%Y")


def _date(rng: random.Random, ctx: dict) -> str:
    """A day of the stay (or the few days before admission)."""
    return _format_day(ctx["admission"] + rng.randint(-7, ctx["stay"]))


def _dose(rng: random.Random, ctx: dict) -> str:
    return rng.choice(_DOSES)


def _posologie(rng: random.Random, ctx: dict) -> str:
    dose = rng.choice(_DOSES)
    if rng.random() < 0.2 and dose.endswith("mg"):
        return f"{dose}/j"
    return f"{dose}{rng.choice(_ROUTES)} {rng.choice(_FREQUENCIES)}"


_FILLERS = {
    "Patient": lambda r, c: "Patiente" if c["female"] else "Patient",
    "patient": lambda r, c: "patiente" if c["female"] else "patient",
    "un_patient": lambda r, c: "une patiente" if c["female"] else "un patient",
    "e": lambda r, c: "e" if c["female"] else "",
    "Il": lambda r, c: "Elle" if c["female"] else "Il",
    "age": lambda r, c: str(c["age"]),
    "date": _date,
    "date_entree": lambda r, c: _format_day(c["admission"]),
    "date_sortie": lambda r, c: _format_day(c["admission"] + c["stay"]),
    "date_suivi": lambda r, c: _format_day(c["admission"] + c["stay"] + r.randint(7, 90)),
    "year": lambda r, c: str(c["year"] - r.randint(1, 25)),
    "duree": lambda r, c: r.choice(_DURATIONS),
    "n": lambda r, c: str(r.randint(2, 40)),
    "parent": lambda r, c: r.choice(("le père", "la mère", "un frère", "une sœur")),
    "vitals": _vitals,
    "lab": _lab,
    "dose": _dose,
    "posologie": _posologie,
    "de_service": lambda r, c: _de(r.choice(_SERVICES)),
    "doctor": lambda r, c: r.choice(_DOCTORS),
    "pg": lambda r, c: c["last_gender_suffix"],
}

_PARSED_SECTIONS = [
    (key, titles, span, tuple(_parse_template(t) for t in templates))
    for key, titles, span, templates in SECTIONS
]


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


class _Pools:
    """Terms per (label, gender requirement, held-out?), with a common-term sub-pool."""

    def __init__(self, lexicons: Lexicons):
        common = common_terms()
        self.meta: dict[str, tuple[str | None, bool]] = {}
        self.pools: dict[tuple[str, str | None, bool], tuple[list[str], list[str]]] = {}
        for novel, part in ((False, lexicons.train), (True, lexicons.heldout)):
            for label in LABELS:
                terms = list(part.get(label, []))
                for term in terms:
                    self.meta[term] = (noun_gender(term), elides(term))
                for gkey in (None, "g", "gs"):
                    if gkey is None:
                        chosen = terms
                    elif gkey == "g":
                        chosen = [t for t in terms if self.meta[t][0] is not None]
                    else:
                        chosen = [t for t in terms if self.meta[t][0] in ("m", "f")]
                    self.pools[(label, gkey, novel)] = (chosen, [t for t in chosen if t in common])
        for label in LABELS:
            if not self.pools[(label, None, False)][0]:
                raise ValueError(f"the train lexicon for {label} is empty")


_POOL_CACHE: dict[int, tuple[Lexicons, _Pools]] = {}


def _pools_for(lexicons: Lexicons) -> _Pools:
    entry = _POOL_CACHE.get(id(lexicons))
    if entry is None or entry[0] is not lexicons:
        if len(_POOL_CACHE) > 8:
            _POOL_CACHE.clear()
        entry = (lexicons, _Pools(lexicons))
        _POOL_CACHE[id(lexicons)] = entry
    return entry[1]


def _capitalise(text: str) -> str:
    return text[0].upper() + text[1:]


def _generate_one(rng: random.Random, pools: _Pools, test: bool) -> tuple[str, list[dict]]:
    pool_map = pools.pools
    meta = pools.meta
    female = rng.random() < 0.5
    admission = _dt.date(2016, 1, 1).toordinal() + rng.randint(0, 9 * 365)
    stay = rng.randint(1, 21)
    ctx = {
        "female": female,
        "age": rng.randint(18, 97),
        "admission": admission,
        "stay": stay,
        "year": _dt.date.fromordinal(admission).year,
        "last_gender_suffix": "",
    }
    parts: list[str] = []
    entities: list[dict] = []
    pos = 0

    def pick(label: str, gkey: str | None, avoid: Iterable[str] = ()) -> tuple[str, bool]:
        novel = test and rng.random() < 0.5
        every, common = pool_map[(label, gkey, novel)]
        if not every:  # e.g. no held-out anatomy term of known gender: fall back to train
            novel = False
            every, common = pool_map[(label, gkey, False)]
            if not every:
                every, common = pool_map[(label, None, False)]
        pool = common if common and rng.random() < _P_COMMON[label] else every
        term = rng.choice(pool)
        for _ in range(3):
            if term not in avoid:
                break
            term = rng.choice(every)
        return term, novel

    def emit_entity(label: str, term: str, novel: bool, prefix: str, cap: bool) -> None:
        nonlocal pos
        if prefix:
            parts.append(prefix)
            pos += len(prefix)
        surface = _capitalise(term) if cap else term
        parts.append(surface)
        end = pos + len(surface)
        entities.append({"start": pos, "end": end, "label": label, "novel": novel})
        pos = end

    def emit(text: str) -> None:
        nonlocal pos
        parts.append(text)
        pos += len(text)

    def render(tokens: tuple) -> None:
        for token in tokens:
            kind = token[0]
            if kind == _LIT:
                emit(token[1])
            elif kind == _ENT:
                _, label, mode, gkey = token
                term, novel = pick(label, gkey)
                gender, elides = meta[term]
                if gkey is not None:
                    ctx["last_gender_suffix"] = "e" if gender and gender.startswith("f") else ""
                emit_entity(label, term, novel, article(mode, term, gender, elides), mode == "^")
            elif kind == _LIST:
                _, label, cap = token
                count = rng.randint(2, 3) if rng.random() < 0.8 else 4
                chosen: list[str] = []
                and_last = rng.random() < 0.5
                for i in range(count):
                    if i:
                        emit(" et " if and_last and i == count - 1 else ", ")
                    term, novel = pick(label, None, chosen)
                    chosen.append(term)
                    emit_entity(label, term, novel, "", cap and i == 0)
            elif kind == _RX:
                count = rng.randint(2, 4)
                chosen = []
                for i in range(count):
                    if i:
                        emit(", ")
                    term, novel = pick("CHEM", None, chosen)
                    chosen.append(term)
                    emit_entity("CHEM", term, novel, "", False)
                    emit(" " + _posologie(rng, ctx))
            else:
                emit(token[1](rng, ctx))

    # Header.
    emit(rng.choice(HEADERS))
    emit(rng.choice((" - Service ", " – Service ", "\nService ")))
    emit(_de(rng.choice(_SERVICES)))
    if rng.random() < 0.6:
        emit(f"\nSéjour du {_format_day(admission)} au {_format_day(admission + stay)}.")

    # Sections: always the reason for admission and the conclusion, 2 to 4 in between.
    middle = [s for s in _PARSED_SECTIONS[1:-1] if rng.random() < MIDDLE_SECTION_PROBS[s[0]]]
    while len(middle) < 2:
        extra = rng.choice(_PARSED_SECTIONS[1:-1])
        if extra not in middle:
            middle.append(extra)
    while len(middle) > 4:
        middle.pop(rng.randrange(len(middle)))
    order = {s[0]: i for i, s in enumerate(_PARSED_SECTIONS)}
    sections = [_PARSED_SECTIONS[0], *sorted(middle, key=lambda s: order[s[0]])]
    sections.append(_PARSED_SECTIONS[-1])

    title_style = rng.random()
    for _key, titles, (low, high), templates in sections:
        title = rng.choice(titles)
        if title_style < 0.5:
            emit(f"\n{title} : ")
        elif title_style < 0.8:
            emit(f"\n{title}\n")
        else:
            emit(f"\n{title.upper()}\n")
        n = rng.randint(low, high)
        for j, tokens in enumerate(rng.sample(templates, min(n, len(templates)))):
            if j:
                if len(entities) >= _SOFT_MAX_ENTITIES:
                    break  # keep reports within roughly 5-25 mentions
                emit(" ")
            render(tokens)
    return "".join(parts), entities


def generate_reports(
    n_docs: int,
    seed: int,
    vocabulary: str = "train",
    id_prefix: str = "synth",
    lexicons: Lexicons | None = None,
) -> list[dict]:
    """Generate `n_docs` synthetic French hospital reports with gold entity spans.

    Deterministic for a given `(n_docs, seed, vocabulary)`; document `i` depends only on
    `(seed, vocabulary, i)`, so a larger corpus extends a smaller one. With `vocabulary="train"`
    only train terms are used; with `"test"` each mention is a held-out term with probability
    0.5, flagged `"novel": true`.
    """
    if vocabulary not in ("train", "test"):
        raise ValueError(f"vocabulary must be 'train' or 'test', got {vocabulary!r}")
    if n_docs < 0:
        raise ValueError(f"n_docs must be >= 0, got {n_docs}")
    pools = _pools_for(lexicons if lexicons is not None else load_lexicons())
    test = vocabulary == "test"
    docs = []
    for i in range(n_docs):
        rng = random.Random(f"medistill-synth/{seed}/{vocabulary}/{i}")
        text, entities = _generate_one(rng, pools, test)
        docs.append(
            {
                "id": f"{id_prefix}-{i:06d}",
                "text": text,
                "entities": entities,
                "source": SOURCE,
                "licence": SYNTHETIC_LICENCE,
            }
        )
    return docs
