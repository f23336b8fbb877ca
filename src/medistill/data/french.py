"""French spelling and grammar: accents, elision, grammatical gender and articles."""

from __future__ import annotations

import unicodedata


def strip_accents(text: str) -> str:
    """`é` -> `e`: accents dropped, as in many hand-typed notes."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


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


def noun_gender(term: str) -> str | None:
    """Gender (m/f, p if plural) of a term's head noun, from the table or the suffix; None if
    unknown."""
    head = term.split(" ", 1)[0].lower()
    if head in _GENDER:
        return _GENDER[head]
    if head.endswith(_FEMININE_SUFFIXES):
        return "fp" if head.endswith("s") else "f"
    if head.endswith(_MASCULINE_SUFFIXES):
        return "m"
    return None


ARTICLES = {  # mode -> (masculine, feminine, elided, plural)
    "le": ("le ", "la ", "l'", "les "),
    "Le": ("Le ", "La ", "L'", "Les "),
    "du": ("du ", "de la ", "de l'", "des "),
    "au": ("au ", "à la ", "à l'", "aux "),
    "un": ("un ", "une ", None, None),
    "Un": ("Un ", "Une ", None, None),
    "dun": ("d'un ", "d'une ", None, None),
}
# Article mode -> what the term must have: "g" a known gender (or plural), "gs" a known
# singular gender (un/une have no plural here).
GENDERED_MODES = {"le": "g", "Le": "g", "du": "g", "au": "g", "un": "gs", "Un": "gs", "dun": "gs"}


def article(mode: str, term: str, gender: str | None, elides: bool) -> str:
    """The article or preposition a template slot of `mode` puts before `term` ("de l'", "la ")."""
    if mode in ("", "^"):
        return ""
    if mode == "de":
        return "d'" if elides else "de "
    masc, fem, elided, plural = ARTICLES[mode]
    if gender is not None and gender.endswith("p"):
        return plural
    if elided is not None and elides:
        return elided
    return fem if gender is not None and gender.startswith("f") else masc
