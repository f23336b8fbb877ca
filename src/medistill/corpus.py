"""Synthetic French clinical reports with gold entity spans, and French sentence splitting.

The default offline corpus: hospital reports generated from templates and lexicons. Disorders
(DISO) come from edsnlp's French CIM-10 labels, drugs (CHEM) from edsnlp's ATC drug names, and
anatomy (ANAT), procedures (PROC) and signs/symptoms (SOSY) from hand-written lists in
`medistill/lexicons/`. Every lexicon is split by a stable hash of each term into a `train` part
and a `heldout` part; held-out ("novel") terms appear only in documents generated with
`vocabulary="test"`, so an evaluation can measure generalisation to unseen concepts.

Generation uses pre-parsed templates and precomputed offsets (no regex at generation time) and
is deterministic: document `i` depends only on `(seed, vocabulary, i)`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import functools
import gzip
import hashlib
import importlib.util
import json
import os
import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medistill.errors import CorpusSpecError
from medistill.io import write_jsonl

LABELS: tuple[str, ...] = ("DISO", "SOSY", "CHEM", "ANAT", "PROC")

SOURCE = "synthetic"
LICENCE = "BSD-3-Clause AND Apache-2.0"  # edsnlp resources (BSD-3-Clause), this code (Apache-2.0)

_LEXICON_DIR = Path(__file__).resolve().parent / "lexicons"
_HAND_FILES = {  # label -> (hand-written file, is it the "common" list mixed in more often)
    "SOSY": ("symptoms.txt", False),
    "ANAT": ("anatomy.txt", False),
    "PROC": ("procedures.txt", False),
    "DISO": ("disorders_extra.txt", True),
    "CHEM": ("drugs_extra.txt", True),
}
# Probability that a DISO/CHEM mention is drawn from the common hand list rather than the
# whole lexicon (which is dominated by rare CIM-10 codes and rare molecules).
_P_COMMON = {"DISO": 0.45, "CHEM": 0.5, "SOSY": 0.0, "ANAT": 0.0, "PROC": 0.0}


@dataclass(frozen=True)
class Lexicons:
    train: dict[str, list[str]]  # label -> sorted terms
    heldout: dict[str, list[str]]


# --------------------------------------------------------------------------------------------
# Lexicon loading
# --------------------------------------------------------------------------------------------


def _edsnlp_resource(name: str) -> Path:
    """Path of an edsnlp resource file, found without importing edsnlp (which is slow)."""
    hint = "install it with `pip install edsnlp==0.23.0`"
    spec = importlib.util.find_spec("edsnlp")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"edsnlp resource {name!r} not found: edsnlp is not installed; {hint}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "resources" / name
    if not path.is_file():
        raise FileNotFoundError(f"edsnlp resource file {path} is missing; {hint}")
    return path


def _read_hand_list(name: str) -> list[str]:
    path = _LEXICON_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"lexicon file {path} is missing from the medistill package")
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            terms.append(unicodedata.normalize("NFC", line))
    return terms


_CIM10_BAD = re.compile(
    r"[()\[\],;:/0-9.]|\bsans précision\b|\bSAI\b|\bautres?\b|\bnon classée?s?\b|\bprécisée?s?\b"
    r"|\bNCA\b| - |\bet\b|\bou\b|\bdue?s?\b|\bsecondaire\b",
    re.IGNORECASE,
)
_CIM10_BAD_START = {
    "accident", "agression", "ajustement", "antécédents", "antécédent", "besoin", "chute",
    "collision", "complication", "conseil", "contact", "dépistage", "difficultés", "donneur",
    "effet", "effets", "examen", "exposition", "greffe", "intoxication", "mise", "naissance",
    "noyade", "observation", "personne", "prise", "problèmes", "réaction", "rééducation",
    "séquelles", "soins", "sujet", "surveillance", "usage", "vaccination", "présence",
    "absence", "état", "suivi", "traitement", "évaluation", "enfant", "mère", "fœtus", "foetus",
    "nouveau-né", "grossesse", "lésion", "lésions", "plaie", "plaies", "écrasement",
    "fractures", "luxation", "entorse", "amputation", "brûlure", "brûlures", "corps",
    "gelure", "tumeurs",
}  # fmt: skip
# CIM-10 chapters that are not disorders: external causes (V-Y), health factors (Z), U codes.
_CIM10_BAD_CHAPTER = tuple("UVWXYZ")


def _natural_case(label: str) -> str:
    """Lower-case the first letter unless the first word is an acronym ("VIH", "HTA")."""
    first = label.split(" ", 1)[0]
    if len(first) >= 2 and first.isupper():
        return label
    return label[0].lower() + label[1:]


def _cim10_terms() -> list[str]:
    path = _edsnlp_resource("cim10.csv.gz")
    terms = []
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            label = unicodedata.normalize("NFC", (row.get("long") or "").strip())
            if not label or row["code"].startswith(_CIM10_BAD_CHAPTER):
                continue
            words = label.split()
            if not 1 <= len(words) <= 5 or len(label) > 50 or _CIM10_BAD.search(label):
                continue
            if words[0].lower() in _CIM10_BAD_START:
                continue
            terms.append(_natural_case(label))
    return terms


_DRUG_WORD = re.compile(r"[a-zàâäçéèêëîïôöùûüœ]+")
_DRUG_BAD = {
    "autres", "autre", "associations", "association", "divers", "combinaisons", "solutions",
    "preparations", "produits", "vaccins", "extraits", "agents", "en", "et", "de", "pour",
    "avec", "sans", "acides", "sels", "derives", "substances", "medicaments", "antiinfectieux",
}  # fmt: skip
_DRUG_SALTS = {
    "acetate", "bicarbonate", "bromure", "carbonate", "chlorure", "citrate", "fluorure",
    "gluconate", "hydroxyde", "iodure", "lactate", "nitrate", "oxyde", "phosphate", "sulfate",
    "trioxyde", "peroxyde", "hypochlorite", "hexafluorure",
}  # fmt: skip


def strip_accents(text: str) -> str:
    """`é` -> `e`: accents dropped, as in many hand-typed notes."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def _drug_terms() -> list[str]:
    """Lower-case INN names of one or two words ("ramipril", "acide valproique")."""
    path = _edsnlp_resource("drugs.json")
    with open(path, encoding="utf-8") as handle:
        drugs = json.load(handle)
    terms = set()
    for names in drugs.values():
        for name in names:
            name = unicodedata.normalize("NFC", name.strip())
            if name != name.lower():
                continue  # brand names are in capitals
            words = name.split(" ")
            if not 1 <= len(words) <= 2 or not all(_DRUG_WORD.fullmatch(w) for w in words):
                continue
            if any(w in _DRUG_BAD for w in words) or len(words[0]) < 4:
                continue
            if len(words) == 1 and words[0].endswith("s"):
                continue  # mostly class names ("antiseptiques")
            if len(words) == 2:
                if any(w.endswith(("s", "x")) and len(w) > 3 for w in words):
                    continue  # plural class names ("anesthesiques locaux")
                first, second = words
                if second == "acide":
                    name = f"acide {first}"
                elif second in _DRUG_SALTS:
                    name = f"{second} {'d' + chr(39) if elides(first) else 'de '}{first}"
            terms.add(name)
    return sorted(terms)


def _stable_fraction(term: str) -> float:
    digest = hashlib.md5(term.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def load_lexicons(heldout_fraction: float = 0.2) -> Lexicons:
    """All five lexicons, each split by a stable hash of the term into train and held-out terms.

    A term belongs to one label only (hand lists take precedence, in the order SOSY, ANAT, PROC,
    DISO, CHEM); duplicates that differ only by case or accents are dropped. Cached: the same
    fraction always returns the same object.
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {heldout_fraction}")
    return _load_lexicons(float(heldout_fraction))


@functools.lru_cache(maxsize=8)
def _load_lexicons(heldout_fraction: float) -> Lexicons:
    sources: list[tuple[str, list[str]]] = [
        (label, _read_hand_list(name)) for label, (name, _) in _HAND_FILES.items()
    ]
    sources.append(("DISO", _cim10_terms()))
    sources.append(("CHEM", _drug_terms()))
    seen: set[str] = set()
    merged: dict[str, list[str]] = {label: [] for label in LABELS}
    for label, terms in sources:
        for term in terms:
            key = strip_accents(term.casefold())
            if key in seen:
                continue
            seen.add(key)
            merged[label].append(term)
    train: dict[str, list[str]] = {}
    heldout: dict[str, list[str]] = {}
    for label in LABELS:
        terms = merged[label]
        heldout[label] = sorted(t for t in terms if _stable_fraction(t) < heldout_fraction)
        train[label] = sorted(t for t in terms if _stable_fraction(t) >= heldout_fraction)
    return Lexicons(train=train, heldout=heldout)


@functools.lru_cache(maxsize=1)
def _common_terms() -> frozenset[str]:
    return frozenset(
        term
        for label, (name, common) in _HAND_FILES.items()
        if common
        for term in _read_hand_list(name)
    )


# --------------------------------------------------------------------------------------------
# French morphology: elision and (for anatomy and procedures) grammatical gender
# --------------------------------------------------------------------------------------------

_VOWELS = frozenset("aeiouyàâäéèêëîïôöùûüœæAEIOUYÀÂÄÉÈÊËÎÏÔÖÙÛÜŒÆ")
_H_ASPIRE = frozenset({"hanche", "hanches", "hernie", "hernies", "hoquet", "handicap", "haut"})

# Head noun -> gender (m/f) and number (p for plural), for the hand-written ANAT/PROC lists.
# A term whose head is unknown is only used in templates that need no article.
_GENDER: dict[str, str] = {
    "abdomen": "m", "aorte": "f", "appendice": "m", "artère": "f", "bassin": "m",
    "bronches": "fp", "cæcum": "m", "cavité": "f", "cerveau": "m", "cervelet": "m",
    "cheville": "f", "cholédoque": "m", "clavicule": "f", "coude": "m", "côlon": "m",
    "cornée": "f", "côtes": "fp", "cou": "m", "crâne": "m", "cuir": "m", "cœur": "m",
    "duodénum": "m", "encéphale": "m", "épaule": "f", "épigastre": "m", "estomac": "m",
    "fémur": "m", "foie": "m", "fosse": "f", "ganglions": "mp", "genou": "m", "glande": "f",
    "hanche": "f", "hippocampe": "m", "humérus": "m", "hypocondre": "m", "hypophyse": "f",
    "intestin": "m", "iléon": "m", "jéjunum": "m", "langue": "f", "larynx": "m", "lobe": "m",
    "main": "f", "mollet": "m", "membres": "mp", "mésentère": "m", "moelle": "f",
    "muqueuse": "f", "nerf": "m", "œil": "m", "œsophage": "m", "oreille": "f",
    "oreillette": "f", "ovaire": "m", "pancréas": "m", "paroi": "f", "peau": "f",
    "péricarde": "m", "péritoine": "m", "pharynx": "m", "pied": "m", "plèvre": "f",
    "poignet": "m", "poumon": "m", "poumons": "mp", "prostate": "f", "rachis": "m", "rate": "f",
    "rectum": "m", "rein": "m", "reins": "mp", "rétine": "f", "sein": "m", "sternum": "m",
    "testicule": "m", "thorax": "m", "thyroïde": "f", "tibia": "m", "trachée": "f", "tronc": "m",
    "uretère": "m", "urètre": "m", "utérus": "m", "valve": "f", "veine": "f", "ventricule": "m",
    "vésicule": "f", "vessie": "f", "voies": "fp",
    # procedures
    "angioscanner": "m", "scanner": "m", "tep-scanner": "m", "écho-doppler": "m",
    "cathétérisme": "m", "drainage": "m", "lavage": "m", "pontage": "m", "holter": "m",
    "électrocardiogramme": "m", "électroencéphalogramme": "m", "électromyogramme": "m",
    "myélogramme": "m", "irm": "f", "cholangio-irm": "f", "épreuve": "f", "pose": "f",
    "prothèse": "f", "césarienne": "f", "ponction": "f", "ostéosynthèse": "f",
}  # fmt: skip
_FEMININE_SUFFIXES = ("ie", "ion", "yse", "èse", "ose", "ure", "ée")
_MASCULINE_SUFFIXES = ("age", "ment", "isme", "gramme", "scanner")


def elides(term: str) -> bool:
    """Whether "de"/"le" elide before `term` ("d'HTA", "l'aorte", but "de la hanche")."""
    first = term[0]
    if first in _VOWELS:
        return True
    if first in "hH":
        word = term.split(" ", 1)[0]
        return word.isupper() or word.lower() not in _H_ASPIRE
    return False


def _gender(term: str) -> str | None:
    head = term.split(" ", 1)[0].lower()
    if head in _GENDER:
        return _GENDER[head]
    if head.endswith(_FEMININE_SUFFIXES):
        return "fp" if head.endswith("s") else "f"
    if head.endswith(_MASCULINE_SUFFIXES):
        return "m"
    return None


_ARTICLES = {  # mode -> (masculine, feminine, elided, plural)
    "le": ("le ", "la ", "l'", "les "),
    "Le": ("Le ", "La ", "L'", "Les "),
    "du": ("du ", "de la ", "de l'", "des "),
    "au": ("au ", "à la ", "à l'", "aux "),
    "un": ("un ", "une ", None, None),
    "Un": ("Un ", "Une ", None, None),
    "dun": ("d'un ", "d'une ", None, None),
}
_GENDERED_MODES = {"le": "g", "Le": "g", "du": "g", "au": "g", "un": "gs", "Un": "gs", "dun": "gs"}


def _prefix(mode: str, term: str, gender: str | None, elides: bool) -> str:
    if mode in ("", "^"):
        return ""
    if mode == "de":
        return "d'" if elides else "de "
    masc, fem, elided, plural = _ARTICLES[mode]
    if gender is not None and gender.endswith("p"):
        return plural
    if elided is not None and elides:
        return elided
    return fem if gender is not None and gender.startswith("f") else masc


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------
# Slots: {LABEL} an entity; {^LABEL} capitalised; {MODE:LABEL} with MODE one of de (de/d'),
# le/Le/du/au (definite article, only for terms of known gender), un/Un/dun (indefinite);
# {list:LABEL} / {list^:LABEL} 2-3 distinct entities; {rxlist} 2-4 drug prescriptions;
# anything else is a filler (see _FILLERS). Templates never contain lexicon terms as plain text.

_SECTIONS: list[tuple[str, tuple[str, ...], tuple[int, int], tuple[str, ...]]] = [
    (
        "motif",
        ("Motif d'hospitalisation", "Motif d'admission", "Motif de l'hospitalisation"),
        (1, 2),
        (
            "{Patient} de {age} ans admis{e} le {date_entree} pour {SOSY}.",
            "{Patient} de {age} ans adressé{e} par son médecin traitant pour {SOSY} "
            "évoluant depuis {duree}.",
            "Hospitalisation programmée pour {PROC}.",
            "Admission aux urgences le {date_entree} pour {SOSY} et {SOSY}.",
            "Suspicion {de:DISO} chez {un_patient} de {age} ans.",
            "{Patient} transféré{e} du service {de_service} pour prise en charge {de:DISO}.",
            "Bilan étiologique {de:SOSY} chez {un_patient} aux antécédents {de:DISO}.",
            "Hospitalisation pour décompensation {de:DISO}.",
            "Prise en charge {dun:PROC} programmée le {date}.",
            "Entrée le {date_entree} pour {SOSY} d'apparition brutale.",
            "{Patient} de {age} ans, connu{e} pour {DISO}, admis{e} pour {SOSY}.",
            "{Patient} de {age} ans sous {CHEM} au long cours, admis{e} pour {SOSY}.",
        ),
    ),
    (
        "atcd",
        ("Antécédents", "Antécédents médicaux et chirurgicaux", "ATCD"),
        (1, 3),
        (
            "Médicaux : {list:DISO}.",
            "Chirurgicaux : {PROC} en {year}.",
            "Notion {de:DISO} ancienne.",
            "Suivi{e} pour {DISO} depuis {year}.",
            "Antécédents familiaux : {DISO} chez {parent}.",
            "Pas d'antécédent {de:DISO} connu.",
            "Allergie connue : {CHEM}.",
            "Traitement habituel : {rxlist}.",
            "{^DISO} depuis {year}, sous {CHEM}.",
            "Antécédent {dun:PROC} en {year} dans un contexte {de:DISO}.",
            "{^DISO} en {year}, traitement par {CHEM}.",
            "{list^:DISO}.",
            "Tabagisme sevré en {year} ({n} paquets-années), notion {de:DISO} familiale.",
        ),
    ),
    (
        "hdm",
        ("Histoire de la maladie", "Anamnèse"),
        (1, 3),
        (
            "Apparition le {date} {de:SOSY} d'intensité croissante.",
            "Notion {de:SOSY} depuis {duree}, automédication par {CHEM}.",
            "Pas {de:SOSY} ni {de:SOSY}.",
            "Absence {de:SOSY}.",
            "Tableau {de:SOSY} évoluant depuis {duree} malgré un traitement par {CHEM}.",
            "Aggravation {de:SOSY} depuis l'arrêt {de:CHEM}.",
            "{Il} se plaint {de:SOSY} et {de:SOSY} depuis {duree}.",
            "Consultation chez son médecin traitant le {date}, introduction {de:CHEM} "
            "sans amélioration.",
            "Majoration {de:SOSY} à l'effort, sans {SOSY}.",
            "{^SOSY} depuis {duree}, sans {SOSY}.",
            "Contexte {de:SOSY} et {de:SOSY} depuis {duree}.",
        ),
    ),
    (
        "examen",
        ("Examen clinique", "Examen à l'entrée", "Examen physique"),
        (1, 3),
        (
            "{vitals}.",
            "{^ANAT} sans anomalie à l'examen.",
            "Douleur à la palpation {du:ANAT}.",
            "Pas {de:SOSY}, pas {de:SOSY}.",
            "Auscultation : {SOSY} en regard {du:ANAT}.",
            "Examen {du:ANAT} normal.",
            "{^SOSY} à l'examen, {ANAT} souple et indolore.",
            "Examen neurologique sans déficit focal, pas {de:SOSY}.",
            "Inspection {du:ANAT} : {SOSY}.",
            "Présence {de:SOSY} à l'auscultation.",
            "{Le:ANAT} : aspect normal.",
            "Reste de l'examen clinique sans particularité, pas {de:SOSY}.",
        ),
    ),
    (
        "paraclinique",
        ("Examens complémentaires", "Bilan paraclinique"),
        (1, 3),
        (
            "{^PROC} le {date} : {DISO}.",
            "{^PROC} : absence {de:DISO}.",
            "{^PROC} : {ANAT} sans anomalie.",
            "Biologie : {lab}.",
            "Biologie : {lab}, en faveur {de:DISO}.",
            "Réalisation {dun:PROC} le {date} retrouvant des signes {de:DISO}.",
            "{^PROC} sans particularité.",
            "Le {date}, {PROC} montrant {ANAT} d'aspect normal.",
            "Pas de lésion visible sur {le:PROC}.",
            "Aspect évocateur {de:DISO} sur {le:PROC}.",
            "{^PROC} en faveur {de:DISO}, sans atteinte {du:ANAT}.",
            "{Un:PROC} est demandé{pg} en complément.",
            "Bilan biologique : {lab}.",
        ),
    ),
    (
        "traitement",
        ("Traitement", "Prise en charge thérapeutique", "Traitement instauré"),
        (1, 3),
        (
            "Traitement de sortie : {rxlist}.",
            "Introduction {de:CHEM} {posologie}.",
            "Majoration {de:CHEM} à {posologie}.",
            "Arrêt {de:CHEM} en raison {de:SOSY}.",
            "Relais per os par {CHEM} {posologie}.",
            "Anticoagulation curative par {CHEM} {posologie}.",
            "Poursuite du traitement par {CHEM} et {CHEM}.",
            "Antibiothérapie par {CHEM} pendant {duree}.",
            "{^CHEM} {posologie}.",
            "Mise sous {CHEM} {posologie} à partir du {date}.",
            "Remplacement {de:CHEM} par {CHEM} devant l'apparition {de:SOSY}.",
            "Prévention thromboembolique par {CHEM} {dose} en sous-cutané.",
            "Ordonnance : {rxlist}.",
        ),
    ),
    (
        "evolution",
        ("Évolution", "Évolution dans le service"),
        (1, 2),
        (
            "Évolution favorable sous {CHEM}.",
            "Apparition le {date} {de:SOSY} ayant motivé la réalisation {dun:PROC}.",
            "Disparition {de:SOSY} à J{n}.",
            "Survenue {de:DISO} compliquant le séjour, traitée par {CHEM}.",
            "Amélioration clinique sous {CHEM} avec régression {de:SOSY}.",
            "Pas {de:SOSY} au cours de l'hospitalisation.",
            "Vu{e} par le {doctor} le {date}.",
            "Avis spécialisé du {doctor} : indication {dun:PROC}.",
            "Bonne tolérance {de:CHEM}, pas {de:SOSY}.",
        ),
    ),
    (
        "conclusion",
        ("Conclusion", "Synthèse", "Conclusion de sortie"),
        (1, 3),
        (
            "Au total, {patient} de {age} ans hospitalisé{e} pour {DISO}.",
            "Diagnostic retenu : {DISO}.",
            "Diagnostics associés : {list:DISO}.",
            "Sortie le {date_sortie} avec suivi en consultation dans {duree}.",
            "Prévoir {un:PROC} de contrôle dans {duree}.",
            "Retour à domicile sous {CHEM} {posologie}.",
            "{^DISO} d'évolution favorable.",
            "Consultation de suivi avec le {doctor} le {date_suivi}.",
            "Retour à domicile le {date_sortie}, pas {de:SOSY} à la sortie.",
            "Surveillance {du:ANAT} à prévoir par {PROC}.",
            "Ordonnance de sortie : {rxlist}.",
        ),
    ),
]
_MIDDLE_SECTION_PROBS = {
    "atcd": 0.8,
    "hdm": 0.45,
    "examen": 0.7,
    "paraclinique": 0.7,
    "traitement": 0.85,
    "evolution": 0.4,
}

_SOFT_MAX_ENTITIES = 18  # past this, sections get only their first sentence

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
            if mode not in ("", "^", "de", *_ARTICLES):
                raise ValueError(f"unknown slot mode {mode!r} in template {template!r}")
            tokens.append((_ENT, label, mode, _GENDERED_MODES.get(mode)))
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
_HEADERS = (
    "Compte rendu d'hospitalisation",
    "COMPTE RENDU D'HOSPITALISATION",
    "Compte rendu d'hospitalisation complète",
    "Lettre de liaison à la sortie",
    "Compte rendu de séjour",
)

_PARSED_SECTIONS = [
    (key, titles, span, tuple(_parse_template(t) for t in templates))
    for key, titles, span, templates in _SECTIONS
]


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------


class _Pools:
    """Terms per (label, gender requirement, held-out?), with a common-term sub-pool."""

    def __init__(self, lexicons: Lexicons):
        common = _common_terms()
        self.meta: dict[str, tuple[str | None, bool]] = {}
        self.pools: dict[tuple[str, str | None, bool], tuple[list[str], list[str]]] = {}
        for novel, part in ((False, lexicons.train), (True, lexicons.heldout)):
            for label in LABELS:
                terms = list(part.get(label, []))
                for term in terms:
                    self.meta[term] = (_gender(term), elides(term))
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
                emit_entity(label, term, novel, _prefix(mode, term, gender, elides), mode == "^")
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
    emit(rng.choice(_HEADERS))
    emit(rng.choice((" - Service ", " – Service ", "\nService ")))
    emit(_de(rng.choice(_SERVICES)))
    if rng.random() < 0.6:
        emit(f"\nSéjour du {_format_day(admission)} au {_format_day(admission + stay)}.")

    # Sections: always the reason for admission and the conclusion, 2 to 4 in between.
    middle = [s for s in _PARSED_SECTIONS[1:-1] if rng.random() < _MIDDLE_SECTION_PROBS[s[0]]]
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
                "licence": LICENCE,
            }
        )
    return docs


# --------------------------------------------------------------------------------------------
# Sentence splitting
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# JSON lines
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Normalisation, deduplication and the corpus build
# --------------------------------------------------------------------------------------------

# Apostrophes to ASCII, odd spaces to a plain space, invisible characters removed, CR to LF.
_TRANSLATE = str.maketrans(
    {
        **dict.fromkeys(map(ord, "\u2019\u2018\u02bc\u00b4\u2032"), "'"),
        **dict.fromkeys(
            map(
                ord,
                "\t\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
                "\u2007\u2008\u2009\u200a\u202f\u205f\u3000\u000b\u000c",
            ),
            " ",
        ),
        **dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None),
        ord("\r"): "\n",
        ord("\u2028"): "\n",
        ord("\u2029"): "\n",
    }
)


def normalise_text(text: str) -> str:
    """NFC, apostrophes ' (U+2019 and kin) -> ', non-breaking and odd spaces -> ' '.

    Invisible characters (soft hyphen, zero-width spaces, BOM) are removed and CR becomes LF
    ("\\r\\n" becomes one LF).
    """
    return unicodedata.normalize("NFC", text.replace("\r\n", "\n")).translate(_TRANSLATE)


def normalise_document(doc: dict) -> dict:
    """`doc` with its text normalised; entity spans follow the text they cover."""
    if not doc.get("entities"):
        return {**doc, "text": normalise_text(doc["text"])}
    text, pieces, entities, cursor, length = doc["text"], [], [], 0, 0
    for entity in doc["entities"]:
        before = normalise_text(text[cursor : entity["start"]])
        inside = normalise_text(text[entity["start"] : entity["end"]])
        pieces += [before, inside]
        start = length + len(before)
        length = start + len(inside)
        entities.append({**entity, "start": start, "end": length})
        cursor = entity["end"]
    pieces.append(normalise_text(text[cursor:]))
    return {**doc, "text": "".join(pieces), "entities": entities}


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


def _quotas(spec: dict, available: list[int], where: str) -> list[int]:
    """How many documents to take from each source: its `n_docs`, its `weight` share of the
    corpus `n_docs` left after the fixed sources, or (neither) all of them."""
    sources = spec["sources"]
    for i, source in enumerate(sources):
        if "weight" in source and "n_docs" in source and source["kind"] != "synthetic":
            raise CorpusSpecError(
                f"{where}.sources.{i}: both `weight` and `n_docs`; keep one (n_docs: a fixed "
                "count, weight: a share of the corpus n_docs)"
            )
    weighted = [i for i, s in enumerate(sources) if "weight" in s]
    quotas = [
        min(s["n_docs"], n) if "n_docs" in s and "weight" not in s else n
        for s, n in zip(sources, available, strict=True)
    ]
    if weighted:
        if "n_docs" not in spec:
            raise CorpusSpecError(
                f"{where}: sources {weighted} have a `weight` but the corpus has no `n_docs`; "
                f"add `{where}.n_docs` (the total the weights share)"
            )
        fixed = sum(q for i, q in enumerate(quotas) if i not in weighted)
        left = max(0, spec["n_docs"] - fixed)
        total = sum(sources[i]["weight"] for i in weighted)
        for i in weighted:
            quotas[i] = min(available[i], round(left * sources[i]["weight"] / total))
    return quotas


def _sample(docs: list[dict], k: int, seed: int, name: str) -> list[dict]:
    """`k` documents drawn without replacement, deterministic, in their original order."""
    if k >= len(docs):
        return docs
    rng = random.Random(f"medistill-corpus/{seed}/{name}")
    return [docs[i] for i in sorted(rng.sample(range(len(docs)), k))]


def corpus_statistics(docs: list[dict]) -> dict:
    """Counts only (never text), so they can go to logs and MLflow."""
    from collections import Counter

    return {
        "n_docs": len(docs),
        "n_sentences": sum(len(split_sentences(d["text"])) for d in docs),
        "n_tokens": sum(len(d["text"].split()) for d in docs),
        "n_characters": sum(len(d["text"]) for d in docs),
        "n_entities": sum(len(d.get("entities", ())) for d in docs),
        "entities_per_label": dict(
            Counter(e["label"] for d in docs for e in d.get("entities", ()))
        ),
    }


def collect_documents(spec: dict, where: str = "corpus") -> tuple[list[dict], dict]:
    """Read, normalise, filter, deduplicate and mix a corpus's sources; return docs and stats."""
    from collections import Counter

    from medistill.sources import read_source, source_name

    min_chars, max_chars = spec.get("min_chars", 1), spec.get("max_chars")
    names = [source_name(s, i) for i, s in enumerate(spec["sources"])]
    if len(set(names)) != len(names):
        raise CorpusSpecError(f"{where}: two sources share a name ({names}); give each a `name`")
    prefix = len(names) > 1
    per_source, details, seen_ids = [], {}, set()
    dedup = Deduplicator(spec.get("dedup", "normalised"))
    for i, (source, name) in enumerate(zip(spec["sources"], names, strict=True)):
        raw = read_source(source, f"{where}.sources.{i} ({name})")
        kept, too_short, too_long = [], 0, 0
        for doc in raw:
            doc = normalise_document(doc)
            n = len(doc["text"].strip())
            if n < min_chars:
                too_short += 1
                continue
            if max_chars is not None and n > max_chars:
                too_long += 1
                continue
            doc_id = f"{name}:{doc['id']}" if prefix else str(doc["id"])
            while doc_id in seen_ids:
                doc_id += "+"
            seen_ids.add(doc_id)
            kept.append({**doc, "id": doc_id, "source": name})
        kept = [d for d in kept if dedup.keep(d["text"])]
        per_source.append(kept)
        details[name] = {
            "kind": source["kind"],
            "n_read": len(raw),
            "filtered_too_short": too_short,
            "filtered_too_long": too_long,
        }
    quotas = _quotas(spec, [len(d) for d in per_source], where)
    docs = []
    for name, kept, quota in zip(names, per_source, quotas, strict=True):
        chosen = _sample(kept, quota, spec.get("seed", 0), name)
        licences = Counter(d["licence"] for d in chosen)
        details[name] |= {
            "n_available": len(kept),
            "n_docs": len(chosen),
            "licence": next(iter(licences)) if len(licences) == 1 else "mixed (see licences)",
            "licences": dict(licences),
        }
        docs += chosen
    if not docs:
        raise CorpusSpecError(
            f"{where}: no document left after the length filters and deduplication; lower "
            "`min_chars`, raise `max_chars` or add sources"
        )
    stats = corpus_statistics(docs)
    licences = sorted({d["licence"] for d in docs})
    stats |= {
        "licence": spec.get("licence") or " AND ".join(licences),
        "sources": details,
        "dedup": dedup.mode,
        "dedup_removed": sum(dedup.removed.values()),
        "dedup_removed_by": dedup.removed,
    }
    return docs, stats


def build_corpus(
    spec: dict,
    docs_path: str | os.PathLike,
    stats_path: str | os.PathLike,
    name: str = "corpus",
) -> dict:
    """Build a corpus from its config entry; write its documents and their statistics.

    Nothing is written unless every source reads cleanly (both files are written atomically).
    `name` (the corpus's config key) prefixes error messages: `corpora.NAME.sources.0 (...)`.
    """
    from medistill.io import write_json

    docs, stats = collect_documents(spec, where=f"corpora.{name}")
    write_jsonl(docs, docs_path)
    write_json(stats, stats_path)
    return stats
