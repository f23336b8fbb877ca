"""What a prompted instruction LLM is asked when it teaches the seq2seq family: a French
instruction per task kind, a few gold pairs of the train split as worked examples, then the
report. The texts live here, below the models, so the job graph (`seq2seq.plan`) can put them
in a cache's config slice: editing an instruction reruns the LLM's outputs and what learnt
from them, nothing else."""

from __future__ import annotations

import random
from collections.abc import Sequence

# The gold targets' own shapes (medistill.seq2seq.pairs): a few labelled lines for a summary; one
# "Question : ... / Réponse : ..." pair for an exercise, its answer read in the report.
INSTRUCTIONS = {
    "summary": (
        "Tu es médecin hospitalier. Résume le compte rendu clinique en français, en quelques "
        "lignes courtes (motif, diagnostics, traitement, sortie), sans rien ajouter qui ne "
        "soit écrit dans le compte rendu. Garde les accents et l'orthographe des termes "
        "médicaux."
    ),
    "exercise": (
        "Tu formes des soignants. À partir du compte rendu clinique, écris en français une "
        "question d'exercice et sa réponse, sur deux lignes : « Question : ... » puis "
        "« Réponse : ... ». La réponse doit se trouver dans le compte rendu."
    ),
}


def few_shot_pairs(train: Sequence[dict], shots: int, seed: int) -> list[dict]:
    """`shots` gold pairs of the train split, drawn with `seed` among its shorter half (the
    examples share the prompt's context window with the report)."""
    shorter = sorted(train, key=lambda pair: (len(pair["source"]), pair["id"]))
    pool = shorter[: max(shots, len(shorter) // 2)]
    return random.Random(seed).sample(pool, min(shots, len(pool)))


def chat_messages(kind: str, source: str, examples: Sequence[dict]) -> list[dict]:
    """The chat: the instruction, each example as a user turn (its report) and an assistant
    turn (its gold target), then the report to answer."""
    messages = [{"role": "system", "content": INSTRUCTIONS[kind]}]
    for example in examples:
        messages += [
            {"role": "user", "content": example["source"]},
            {"role": "assistant", "content": example["target"]},
        ]
    return [*messages, {"role": "user", "content": source}]
