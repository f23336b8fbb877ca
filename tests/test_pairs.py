"""Seq2seq pairs: targets derived exactly from synthetic reports, and pair files whose every
problem is named by file and line."""

from __future__ import annotations

import json

import pytest

from medistill.core.errors import TaskDataError
from medistill.data.french import strip_accents
from medistill.data.lexicons import LABELS
from medistill.seq2seq.pairs import (
    EXERCISE,
    SUMMARY,
    TASKS,
    load_pairs,
    pair_from_report,
    report_sections,
    split_exercise,
    synthetic_pairs,
)


@pytest.fixture(scope="module")
def pairs() -> dict[str, list[dict]]:
    """Both tasks on train-vocabulary and test-vocabulary (held-out terms) reports."""
    return {
        task: synthetic_pairs(task, 150, seed=7) + synthetic_pairs(task, 60, 7, "test")
        for task in TASKS
    }


def _key(text: str) -> str:
    return strip_accents(text.casefold())


def test_deterministic_and_a_larger_set_extends_a_smaller_one():
    for task in TASKS:
        assert synthetic_pairs(task, 12, seed=3) == synthetic_pairs(task, 12, seed=3)
        assert synthetic_pairs(task, 12, seed=3)[:5] == synthetic_pairs(task, 5, seed=3)
        assert synthetic_pairs(task, 12, seed=3) != synthetic_pairs(task, 12, seed=4)


def test_entity_spans_match_their_text(pairs):
    for task, task_pairs in pairs.items():
        for pair in task_pairs:
            assert pair["task"] == task and pair["target"].strip()
            for side in ("source", "target"):
                for entity in pair[f"{side}_entities"]:
                    assert pair[side][entity["start"] : entity["end"]] == entity["text"]
                    assert entity["label"] in LABELS


def test_every_target_entity_is_an_entity_of_its_report(pairs):
    for task_pairs in pairs.values():
        for pair in task_pairs:
            source = {(e["label"], _key(e["text"])) for e in pair["source_entities"]}
            assert pair["target_entities"], pair["target"]
            for entity in pair["target_entities"]:
                assert (entity["label"], _key(entity["text"])) in source, (entity, pair["id"])


def test_summaries_give_the_reason_for_admission_and_exercises_one_question(pairs):
    for pair in pairs[SUMMARY]:
        first_line = pair["target"].split("\n")[0]
        assert first_line.startswith("Motif : ") and len(first_line) > len("Motif : .")
    kinds = set()
    for pair in pairs[EXERCISE]:
        question, answer = split_exercise(pair["target"])
        assert pair["target"].startswith("Question : ") and question.endswith(" ?")
        assert answer.endswith(".")
        kinds.add(question.split(" ")[0])
    assert kinds == {"Quel", "Quelle", "Y"}  # motif/treatment, dose, findings all drawn


# A report in the generator's layout, written by hand so that every role is known.
REPORT_TEXT = (
    "Compte rendu d'hospitalisation - Service de cardiologie\n"
    "Séjour du 02/03/2020 au 09/03/2020.\n"
    "Motif d'hospitalisation : Patient de 70 ans, connu pour HTA, admis pour dyspnée.\n"
    "Antécédents : Allergie connue : amoxicilline.\n"
    "Examens complémentaires : Échographie cardiaque : absence d'endocardite. Biologie : CRP à "
    "3 mg/L, en faveur d'insuffisance cardiaque.\n"
    "Traitement : Introduction de furosémide 40 mg 1 fois par jour. Arrêt de ramipril en raison "
    "de toux.\n"
    "Évolution : Survenue de pneumopathie compliquant le séjour, traitée par ceftriaxone.\n"
    "Conclusion : Retour à domicile le 09/03/2020, pas de fièvre à la sortie."
)
REPORT_ENTITIES = [
    ("HTA", "DISO"),
    ("dyspnée", "SOSY"),
    ("amoxicilline", "CHEM"),
    ("Échographie cardiaque", "PROC"),
    ("endocardite", "DISO"),
    ("insuffisance cardiaque", "DISO"),
    ("furosémide", "CHEM"),
    ("ramipril", "CHEM"),
    ("toux", "SOSY"),
    ("pneumopathie", "DISO"),
    ("ceftriaxone", "CHEM"),
    ("fièvre", "SOSY"),
]


def _report() -> dict:
    entities, position = [], 0
    for surface, label in REPORT_ENTITIES:
        start = REPORT_TEXT.index(surface, position)
        position = start + len(surface)
        entities.append({"start": start, "end": position, "label": label})
    return {"id": "hand-1", "text": REPORT_TEXT, "entities": entities}


def test_summary_keeps_current_facts_only():
    # Not the known HTA, the allergy, the negated endocarditis and fever, nor the stopped drug.
    assert pair_from_report(_report(), SUMMARY)["target"] == (
        "Motif : dyspnée.\n"
        "Diagnostics : insuffisance cardiaque et pneumopathie.\n"
        "Traitements : furosémide 40 mg et ceftriaxone.\n"
        "Évolution : compliquée de pneumopathie.\n"
        "Sortie : retour à domicile le 09/03/2020."
    )


def test_exercises_ask_only_what_the_report_answers():
    drawn = {pair_from_report(_report(), EXERCISE, seed)["target"] for seed in range(300)}
    assert drawn == {
        "Question : Quel est le motif d'hospitalisation ?\nRéponse : dyspnée.",
        "Question : Quel traitement a été prescrit dans un contexte de pneumopathie ?\n"
        "Réponse : ceftriaxone.",
        "Question : Quelle posologie de furosémide a été prescrite ?\nRéponse : furosémide 40 mg.",
        "Question : Y a-t-il une notion d'endocardite ?\nRéponse : Non : pas d'endocardite.",
        "Question : Y a-t-il une notion de fièvre ?\nRéponse : Non : pas de fièvre.",
        "Question : Y a-t-il une notion de dyspnée ?\nRéponse : Oui : dyspnée.",
        "Question : Y a-t-il une notion d'insuffisance cardiaque ?\n"
        "Réponse : Oui : insuffisance cardiaque.",
        "Question : Y a-t-il une notion de toux ?\nRéponse : Oui : toux.",
        "Question : Y a-t-il une notion de pneumopathie ?\nRéponse : Oui : pneumopathie.",
    }


def test_a_text_that_is_no_synthetic_report_is_refused():
    with pytest.raises(ValueError, match="not a report of medistill.data.synthetic"):
        report_sections("Patient vu en consultation pour une toux.")
    with pytest.raises(ValueError, match="task must be one of"):
        synthetic_pairs("translation", 1, 0)


def test_split_exercise():
    assert split_exercise("Question : Quoi ?\nRéponse : rien.") == ("Quoi ?", "rien.")
    assert split_exercise("question: Quoi ? reponse: rien") == ("Quoi ?", "rien")
    assert split_exercise("ramipril 5 mg") == ("", "ramipril 5 mg")


# ---------------------------------------------------------------------------------------------
# Pair files


def test_jsonl_and_csv_pairs(tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    lines = [
        json.dumps({"id": "a", "report": "Toux depuis 3 jours.", "resume": "Toux."}),
        "",
        json.dumps({"report": "Fièvre\u2028à 39 °C.", "resume": "Fièvre."}),
    ]
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_pairs(jsonl, SUMMARY, source_field="report", target_field="resume")
    assert [(p["id"], p["source"], p["target"]) for p in loaded] == [
        ("a", "Toux depuis 3 jours.", "Toux."),
        ("pairs-3", "Fièvre\u2028à 39 °C.", "Fièvre."),  # U+2028 is not a line break here
    ]
    assert loaded[0]["task"] == SUMMARY and loaded[0]["source_entities"] is None

    csv_file = tmp_path / "pairs.csv"
    csv_file.write_bytes(
        b"\xef\xbb\xbfsource,target\n"  # a byte-order mark, as spreadsheet exports write
        + '"Toux, fièvre\net dyspnée.","Question : Toux ?\nRéponse : Oui."\n'.encode()
        + "Céphalées.,Céphalées.\n".encode()
    )
    loaded = load_pairs(csv_file, EXERCISE)
    assert [p["source"] for p in loaded] == ["Toux, fièvre\net dyspnée.", "Céphalées."]
    assert [p["id"] for p in loaded] == ["pairs-2", "pairs-5"]  # the line each row starts on


GOOD = '{"source": "Toux.", "target": "Toux."}'


@pytest.mark.parametrize(
    ("name", "content", "line", "fix"),
    [
        ("p.jsonl", f'{GOOD}\n{{"source": "Toux.", "target": }}\n', 2, "not valid JSON"),
        ("p.jsonl", f'{GOOD}\n\n{{"source": "Toux."}}\n', 3, "no target field 'target'"),
        (
            "p.jsonl",
            f'{GOOD}\n{{"source": " ", "target": "x"}}\n',
            2,
            "source field 'source' is empty",
        ),
        ("p.jsonl", f'{GOOD}\n{{"source": null, "target": "x"}}\n', 2, "is null, not text"),
        ("p.jsonl", f"{GOOD}\n[1, 2]\n", 2, "is not a JSON object but a list"),
        ("p.csv", "report,target\nToux.,Toux.\n", 1, "no column 'source'"),
        ("p.csv", "source,target\nToux.,Toux.\nToux., fièvre.,Toux.\n", 3, "3 fields"),
        ("p.csv", 'source,target\nToux.,Toux.\n"Toux." fièvre,Toux.\n', 3, "malformed CSV"),
        ("p.csv", "source,target\nToux.,\n", 2, "target field 'target' is empty"),
    ],
)
def test_pair_file_errors_name_file_line_and_fix(tmp_path, name, content, line, fix):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskDataError) as error:
        load_pairs(path, SUMMARY)
    assert f"{path} line {line}: " in str(error.value) and fix in str(error.value)


def test_pair_file_errors_without_a_line(tmp_path):
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(f"{GOOD}\n".encode() + '{"source": "Fièvre."}\n'.encode("latin-1"))
    with pytest.raises(TaskDataError, match=rf"{latin1} line 2: not UTF-8.*iconv"):
        load_pairs(latin1, SUMMARY)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(TaskDataError, match="holds no pair"):
        load_pairs(empty, SUMMARY)
    with pytest.raises(TaskDataError, match=r"pairs files are \.jsonl or \.csv, not \.txt"):
        load_pairs(tmp_path / "pairs.txt", SUMMARY)
    with pytest.raises(TaskDataError, match="does not exist"):
        load_pairs(tmp_path / "missing.csv", SUMMARY)
