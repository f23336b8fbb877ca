"""Unicode normalisation of source text (apostrophes, spaces, invisible characters), entity
spans kept on the text they cover."""

from __future__ import annotations

import unicodedata

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
