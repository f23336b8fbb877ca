"""The entity types and their lexicons, each split into train and held-out terms.

Disorders (DISO) come from edsnlp's French CIM-10 labels, drugs (CHEM) from edsnlp's ATC drug
names, and anatomy (ANAT), procedures (PROC) and signs/symptoms (SOSY) from hand-written lists
in `medistill/lexicons/`. Every lexicon is split by a stable hash of each term into a `train`
part and a `heldout` part; held-out ("novel") terms appear only in documents generated with
`vocabulary="test"`, so an evaluation can measure generalisation to unseen concepts.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import importlib.util
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from medistill.data.french import elides, strip_accents

LABELS: tuple[str, ...] = ("DISO", "SOSY", "CHEM", "ANAT", "PROC")

_LEXICON_DIR = Path(__file__).resolve().parent / "lexicons"
_HAND_FILES = {  # label -> (hand-written file, is it the "common" list mixed in more often)
    "SOSY": ("symptoms.txt", False),
    "ANAT": ("anatomy.txt", False),
    "PROC": ("procedures.txt", False),
    "DISO": ("disorders_extra.txt", True),
    "CHEM": ("drugs_extra.txt", True),
}


@dataclass(frozen=True)
class Lexicons:
    train: dict[str, list[str]]  # label -> sorted terms
    heldout: dict[str, list[str]]


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
def common_terms() -> frozenset[str]:
    """The terms of the "common" hand lists (DISO, CHEM), which generation draws more often."""
    return frozenset(
        term
        for label, (name, common) in _HAND_FILES.items()
        if common
        for term in _read_hand_list(name)
    )
