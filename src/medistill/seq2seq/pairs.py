"""Source/target pairs of the seq2seq task family: a report and its short summary (`summary`),
or a report and one question with its answer, grounded in the report (`exercise`).

A pair is `{"id", "source", "target", "task", "source_entities", "target_entities"}`; an entity
is `{"start", "end", "label", "text"}`, its offsets into its own text (source or target).

Offline, pairs come from the synthetic reports of `medistill.data.synthetic`. Their targets are
built from what the generator wrote, never guessed: its entity spans, its section titles (those
of `medistill.data.report_templates`, found again in the text), the doses it wrote after drug
names and
the fixed wording of its templates (negations "pas de", "absence de", "sans"; "Arrêt de" a drug;
"Survenue de" a complication; a disorder "depuis 2010, sous" its drug). So every fact of a target
is in its report, and every entity of a target carries its span and label.

- summary: "Motif : ..." (the reason for admission), "Diagnostic(s) : ..." (the disorders found
  in the work-up, the course and the conclusion, not the negated ones), "Traitement(s) : ..."
  (the drugs given in the treatment, course and conclusion sections, with their dose, not the
  stopped ones), "Évolution : ..." and "Sortie : ..." (outcome and discharge, where written).
- exercise: "Question : ...\\nRéponse : ...", one of: the reason for admission; the drug given for
  a disorder; the dose of a drug; whether a sign or disorder is present ("Oui : ..." for affirmed
  findings, "Non : pas de ..." for negated ones). Questions are only asked where the report
  gives one answer (a drug named once, a finding always negated or always affirmed).

Pairs of real data are read from JSON lines or CSV files (`load_pairs`); they have no gold
entities (`None`).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import random
import re
from dataclasses import dataclass
from pathlib import Path

from medistill.core.errors import TaskDataError
from medistill.core.io import json_lines
from medistill.data.french import elides, strip_accents
from medistill.data.lexicons import Lexicons
from medistill.data.report_templates import SECTIONS
from medistill.data.synthetic import generate_reports

SUMMARY = "summary"
EXERCISE = "exercise"
TASKS = (SUMMARY, EXERCISE)
QUESTION = "Question : "
ANSWER = "Réponse : "
PAIR_FORMATS = (".jsonl", ".csv")

# The generator writes a section title as it is or upper-cased, after a newline, then " : " or
# a newline; the longest titles come first so "Antécédents" does not cut a longer title short.
_SECTION_OF_TITLE = {
    form: key
    for key, titles, _, _ in SECTIONS
    for title in titles
    for form in (title, title.upper())
}
_TITLE = re.compile(
    "\n("
    + "|".join(map(re.escape, sorted(_SECTION_OF_TITLE, key=len, reverse=True)))
    + ")(?: : |\n)"
)

# Cues read in the text just before a mention (anchored at the mention). They are the fixed
# words of the templates in `medistill.data.report_templates`.
_DE = r"(?:de |d'|du |de la |de l'|des )"
_NEGATED = re.compile(
    rf"\b(?:pas(?: d'antécédent)?|absence|sans(?: atteinte)?|ni) {_DE}?$", re.IGNORECASE
)
_HISTORY = re.compile(r"(?:connue? pour |antécédents (?:de |d'))$")  # a known disorder
_QUALIFIER = re.compile(r"(?:[Ss]uspicion|décompensation) (?:de |d')$")  # kept in the reason
_SUSPECTED = re.compile(r"[Ss]uspicion (?:de |d')$")
_STOPPED = re.compile(r"(?:Arrêt|Remplacement) (?:de |d')$")
_COMPLICATION = re.compile(r"Survenue (?:de |d')$")
_CUE_WINDOW = 40  # characters before a mention that the cues are searched in
# Text between a disorder and the drug given for it.
_DRUG_FOR_DISORDER = re.compile(
    r" (?:depuis \d{4}, sous|en \d{4}, traitement par|compliquant le séjour, traitée par) "
)
# A dose right after a drug name ("ramipril 5 mg", "Majoration de ramipril à 10 mg/j").
_DOSE = re.compile(r"(?: à)? (\d+(?:,\d+)? (?:mg|g|UI|µg|cp|sachet)(?:/j)?)(?![\w/])")
_FAVOURABLE = re.compile(r"[ée]volution favorable|Amélioration clinique|Disparition (?:de |d')")
_HOME = re.compile(r"Retour à domicile")
_DISCHARGE_DATE = re.compile(
    r"(?:Sortie le|Retour à domicile le|Séjour du \d\d/\d\d/\d{4} au) (\d\d/\d\d/\d{4})"
)
_FINDING_LABELS = ("SOSY", "DISO")
# How a generated exercise marks its parts; a model may drop the accent or change the case.
_ANSWER_MARKER = re.compile(r"r[ée]ponse\s*:", re.IGNORECASE)
_QUESTION_MARKER = re.compile(r"^question\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class _Mention:
    """An entity of a report, with what its context says about it."""

    start: int
    end: int
    text: str
    label: str
    section: str
    before: str  # the text just before it, where the cues are
    dose: str | None  # written right after a drug name

    @property
    def key(self) -> str:
        return strip_accents(self.text.casefold())

    @property
    def negated(self) -> bool:
        return bool(_NEGATED.search(self.before))


class _Target:
    """A target text built piece by piece, with the spans of the entities put in it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.entities: list[dict] = []
        self.length = 0

    def add(self, *pieces: str | _Mention) -> None:
        """Append text; a mention is appended as an entity, in mid-sentence case."""
        for piece in pieces:
            if isinstance(piece, _Mention):
                text = _mid_sentence(piece.text)
                self.entities.append(
                    {
                        "start": self.length,
                        "end": self.length + len(text),
                        "label": piece.label,
                        "text": text,
                    }
                )
            else:
                text = piece
            self.parts.append(text)
            self.length += len(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _mid_sentence(term: str) -> str:
    """A term as written inside a sentence: "Fièvre" -> "fièvre"; acronyms ("HTA") kept."""
    if len(term) > 1 and term[0].isupper() and not term[1].isupper():
        return term[0].lower() + term[1:]
    return term


def _de(term: str) -> str:
    return "d'" if elides(term) else "de "


def _unique(mentions: list[_Mention]) -> list[_Mention]:
    """The first mention of each term (case and accents ignored), in report order."""
    seen: set[str] = set()
    kept = []
    for mention in mentions:
        if mention.key not in seen:
            seen.add(mention.key)
            kept.append(mention)
    return kept


def _plural(word: str, items: list) -> str:
    return word + "s" if len(items) > 1 else word


# ---------------------------------------------------------------------------------------------
# Reading a synthetic report back


def report_sections(text: str) -> list[dict]:
    """The sections of a synthetic report in order: `{"key", "start", "end"}`, the character
    range of each section's body (after its title); keys are those of `SECTIONS`."""
    matches = list(_TITLE.finditer(text))
    sections = [
        {
            "key": _SECTION_OF_TITLE[match.group(1)],
            "start": match.end(),
            "end": matches[i + 1].start() if i + 1 < len(matches) else len(text),
        }
        for i, match in enumerate(matches)
    ]
    if not sections or sections[0]["key"] != "motif" or sections[-1]["key"] != "conclusion":
        raise ValueError(
            "not a report of medistill.data.synthetic (it starts with the reason for admission and "
            "ends with the conclusion, under the titles of medistill.data.report_templates); pairs "
            "are derived only from its reports"
        )
    return sections


def _mentions(report: dict) -> list[_Mention]:
    text = report["text"]
    sections = report_sections(text)
    mentions = []
    for entity in sorted(report["entities"], key=lambda e: e["start"]):
        start, end = entity["start"], entity["end"]
        section = next((s["key"] for s in sections if s["start"] <= start < s["end"]), "header")
        dose = _DOSE.match(text, end) if entity["label"] == "CHEM" else None
        mentions.append(
            _Mention(
                start=start,
                end=end,
                text=text[start:end],
                label=entity["label"],
                section=section,
                before=text[max(0, start - _CUE_WINDOW) : start],
                dose=dose.group(1) if dose else None,
            )
        )
    return mentions


def _reasons(mentions: list[_Mention]) -> list[tuple[str | _Mention, ...]]:
    """The reason for admission: the signs, disorders and procedures of its section that are
    not a known disorder, with "suspicion de" / "décompensation de" where written."""
    reasons = []
    for mention in _unique(mentions):
        if (
            mention.section != "motif"
            or mention.label not in ("SOSY", "DISO", "PROC")
            or _HISTORY.search(mention.before)
        ):
            continue
        qualifier = _QUALIFIER.search(mention.before)
        reasons.append((qualifier.group(0).lower(), mention) if qualifier else (mention,))
    return reasons


def _with_dose(drug: _Mention) -> tuple[str | _Mention, ...]:
    return (drug, f" {drug.dose}") if drug.dose else (drug,)


# ---------------------------------------------------------------------------------------------
# Summary


def _summary(report: dict, mentions: list[_Mention]) -> _Target:
    text = report["text"]
    diagnoses = _unique(
        [
            m
            for m in mentions
            if m.label == "DISO"
            and m.section in ("paraclinique", "evolution", "conclusion")
            and not m.negated
        ]
    )
    treatments = _unique(
        [
            m
            for m in mentions
            if m.label == "CHEM"
            and m.section in ("traitement", "evolution", "conclusion")
            and not _STOPPED.search(m.before)
        ]
    )
    outcome_text = " ".join(
        text[s["start"] : s["end"]]
        for s in report_sections(text)
        if s["key"] in ("evolution", "conclusion")
    )
    course: list[tuple[str | _Mention, ...]] = []
    if _FAVOURABLE.search(outcome_text):
        course.append(("favorable",))
    for mention in _unique(mentions):
        if mention.section == "evolution" and _COMPLICATION.search(mention.before):
            course.append((f"compliquée {_de(mention.text)}", mention))
    discharge = []
    if _HOME.search(outcome_text):
        discharge.append("retour à domicile")
    date = _DISCHARGE_DATE.search(text)
    if date:
        discharge.append(f"le {date.group(1)}")

    target = _Target()
    target.add("Motif : ", *_join(_reasons(mentions)), ".")
    if diagnoses:
        target.add(
            f"\n{_plural('Diagnostic', diagnoses)} : ", *_join([(m,) for m in diagnoses]), "."
        )
    if treatments:
        drugs = _join([_with_dose(m) for m in treatments])
        target.add(f"\n{_plural('Traitement', treatments)} : ", *drugs, ".")
    if course:
        target.add("\nÉvolution : ", *_join(course), ".")
    if discharge:
        target.add(f"\nSortie : {' '.join(discharge)}.")
    return target


# ---------------------------------------------------------------------------------------------
# Exercise


def _exercises(report: dict, mentions: list[_Mention]) -> dict[str, list[tuple[tuple, tuple]]]:
    """Candidate (question, answer) pieces by kind; only questions with one answer."""
    text = report["text"]
    occurrences: dict[tuple[str, str], list[_Mention]] = {}
    for mention in mentions:
        occurrences.setdefault((mention.label, mention.key), []).append(mention)

    def named_once(mention: _Mention) -> bool:
        return len(occurrences[(mention.label, mention.key)]) == 1

    candidates: dict[str, list[tuple[tuple, tuple]]] = {
        "motif": [(("Quel est le motif d'hospitalisation ?",), (*_join(_reasons(mentions)), "."))]
    }
    for disorder, drug in itertools.pairwise(mentions):
        if (
            disorder.label == "DISO"
            and drug.label == "CHEM"
            and _DRUG_FOR_DISORDER.fullmatch(text[disorder.end : drug.start])
            and named_once(disorder)
        ):
            question = ("Quel traitement a été prescrit dans un contexte ", _de(disorder.text))
            candidates.setdefault("treatment", []).append(
                ((*question, disorder, " ?"), (*_with_dose(drug), "."))
            )
    for drug in mentions:
        if drug.label == "CHEM" and drug.dose and named_once(drug):
            question = ("Quelle posologie ", _de(drug.text), drug, " a été prescrite ?")
            candidates.setdefault("dose", []).append((question, (*_with_dose(drug), ".")))
    for finding in _unique(mentions):
        if finding.label not in _FINDING_LABELS:
            continue
        every = occurrences[(finding.label, finding.key)]
        question = ("Y a-t-il une notion ", _de(finding.text), finding, " ?")
        if all(m.negated for m in every):
            answer = ("Non : pas ", _de(finding.text), finding, ".")
            candidates.setdefault("negated", []).append((question, answer))
        elif not any(
            m.negated
            or m.section == "atcd"  # history, family history: not what the patient has now
            or _HISTORY.search(m.before)
            or _SUSPECTED.search(m.before)  # a suspicion is not a finding
            for m in every
        ):
            candidates.setdefault("affirmed", []).append((question, ("Oui : ", finding, ".")))
    return candidates


def _join(items: list[tuple[str | _Mention, ...]]) -> tuple[str | _Mention, ...]:
    """Items as the pieces of a French list: "a, b et c"."""
    pieces: list[str | _Mention] = []
    for i, item in enumerate(items):
        if i:
            pieces.append(" et " if i == len(items) - 1 else ", ")
        pieces.extend(item)
    return tuple(pieces)


def split_exercise(text: str) -> tuple[str, str]:
    """(question, answer) of an exercise text; the answer is what follows the last
    "Réponse :" (accents and case ignored), or the whole text when it has none."""
    markers = list(_ANSWER_MARKER.finditer(text))
    if not markers:
        return "", text.strip()
    question = _QUESTION_MARKER.sub("", text[: markers[-1].start()].strip())
    return question.strip(), text[markers[-1].end() :].strip()


# ---------------------------------------------------------------------------------------------
# Pairs


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def pair_from_report(report: dict, task: str, seed: int = 0) -> dict:
    """The `task` pair of a synthetic report (`{"id", "text", "entities"}`, as made by
    `data.synthetic.generate_reports`); the exercise's question is drawn with `seed`."""
    _check_task(task)
    mentions = _mentions(report)
    if task == SUMMARY:
        target = _summary(report, mentions)
    else:
        # Seeded by the report itself: the same report always gets the same question.
        rng = random.Random(f"medistill-pairs/{seed}/{report['text']}")
        candidates = _exercises(report, mentions)
        question, answer = rng.choice(candidates[rng.choice(sorted(candidates))])
        target = _Target()
        target.add(QUESTION, *question, "\n", ANSWER, *answer)
    text = report["text"]
    return {
        "id": report["id"],
        "source": text,
        "target": target.text,
        "task": task,
        "source_entities": [
            {"start": m.start, "end": m.end, "label": m.label, "text": m.text} for m in mentions
        ],
        "target_entities": target.entities,
    }


def synthetic_pairs(
    task: str,
    n_docs: int,
    seed: int,
    vocabulary: str = "train",
    lexicons: Lexicons | None = None,
) -> list[dict]:
    """`n_docs` pairs of `task` from `data.synthetic.generate_reports(n_docs, seed, vocabulary)`;
    deterministic for a seed, pair `i` depending only on `(seed, vocabulary, i)`."""
    _check_task(task)
    reports = generate_reports(n_docs, seed, vocabulary, lexicons=lexicons)
    return [pair_from_report(report, task, seed) for report in reports]


# ---------------------------------------------------------------------------------------------
# Pair files


def _read_text(path: Path) -> str:
    """The text of a pairs file, which must be UTF-8 (a leading byte-order mark is dropped)."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TaskDataError(
            f"{path} line {line}: not UTF-8 ({error.reason}); convert the file to UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 {path.name}`)"
        ) from None


def _pair(record: dict, fields: dict[str, str], task: str, path: Path, line: int) -> dict:
    """One pair of a file's record, its `source` and `target` checked."""
    where = f"{path} line {line}"
    values = {}
    for role, name in fields.items():
        if name not in record:
            raise TaskDataError(
                f"{where}: no {role} field {name!r} (fields: {', '.join(map(str, record))}); "
                f"add it, or name the {role} field with `{role}_field`"
            )
        value = record[name]
        if not isinstance(value, str):
            kind = "null" if value is None else type(value).__name__
            raise TaskDataError(
                f"{where}: the {role} field {name!r} is {kind}, not text; write it as a string"
            )
        if not value.strip():
            raise TaskDataError(
                f"{where}: the {role} field {name!r} is empty; fill it or drop the line"
            )
        values[role] = value
    return {
        "id": str(record.get("id") or f"{path.stem}-{line}"),
        "source": values["source"],
        "target": values["target"],
        "task": task,
        "source_entities": None,
        "target_entities": None,
    }


def _jsonl_records(path: Path, text: str) -> list[tuple[int, dict]]:
    def problem(line: int, what: str) -> TaskDataError:
        return TaskDataError(
            f"{path} line {line}: {what}; write one JSON object per line, e.g. "
            '{"source": "...", "target": "..."}'
        )

    return list(json_lines(text, problem))


def _csv_records(path: Path, text: str, columns: list[str]) -> list[tuple[int, dict]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records = []
    header: list[str] | None = None
    end_of_previous = 0  # a quoted field may span lines: a row starts after the previous one
    try:
        for row in reader:
            line, end_of_previous = end_of_previous + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                for column in columns:
                    if column not in header:
                        raise TaskDataError(
                            f"{path} line {line}: the header has no column {column!r} (columns: "
                            f"{', '.join(header)}); rename the column or set `source_field` / "
                            "`target_field`"
                        )
                continue
            if len(row) != len(header):
                raise TaskDataError(
                    f"{path} line {line}: {len(row)} fields, the header has {len(header)}; "
                    "quote fields that hold commas or add the missing fields"
                )
            records.append((line, dict(zip(header, row, strict=True))))
    except csv.Error as error:
        raise TaskDataError(
            f"{path} line {end_of_previous + 1}: malformed CSV ({error}); check the quotes of "
            "this row"
        ) from None
    return records


def load_pairs(
    path: str | Path, task: str, source_field: str = "source", target_field: str = "target"
) -> list[dict]:
    """The pairs of a JSON lines file (`.jsonl`, one object per line) or a CSV file (`.csv`,
    a header row naming the columns), source and target in the fields `source_field` and
    `target_field`; an `id` field, where present, names the pair (else `FILE-LINE`).

    Each problem raises `TaskDataError` naming the file, the line (1-based) and the fix:
    non-UTF-8 bytes, malformed JSON or CSV, a missing or empty source or target.
    """
    _check_task(task)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PAIR_FORMATS:
        raise TaskDataError(
            f"{path}: pairs files are {' or '.join(PAIR_FORMATS)}, not {suffix or 'no suffix'}; "
            "convert the file or rename it"
        )
    if not path.is_file():
        raise TaskDataError(f"{path} does not exist; fix the path")
    text = _read_text(path)
    fields = {"source": source_field, "target": target_field}
    if suffix == ".jsonl":
        records = _jsonl_records(path, text)
    else:
        records = _csv_records(path, text, list(fields.values()))
    if not records:
        raise TaskDataError(f"{path} holds no pair; fill it or remove it from the config")
    return [_pair(record, fields, task, path, line) for line, record in records]
