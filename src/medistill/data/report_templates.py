"""The text of synthetic reports: header lines and sections, each with its titles, how many
sentences it takes and its sentence templates, whose slots `medistill.data.synthetic` fills.

Slots: {LABEL} an entity; {^LABEL} capitalised; {MODE:LABEL} with MODE one of de (de/d'),
le/Le/du/au (definite article, only for terms of known gender), un/Un/dun (indefinite);
{list:LABEL} / {list^:LABEL} 2-3 distinct entities; {rxlist} 2-4 drug prescriptions; anything
else is a filler (numbers, dates, names; see `medistill.data.synthetic`). Templates never contain
lexicon terms as plain text.
"""

from __future__ import annotations

SECTIONS: list[tuple[str, tuple[str, ...], tuple[int, int], tuple[str, ...]]] = [
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

# How often each section between the reason for admission and the conclusion appears.
MIDDLE_SECTION_PROBS = {
    "atcd": 0.8,
    "hdm": 0.45,
    "examen": 0.7,
    "paraclinique": 0.7,
    "traitement": 0.85,
    "evolution": 0.4,
}

HEADERS = (
    "Compte rendu d'hospitalisation",
    "COMPTE RENDU D'HOSPITALISATION",
    "Compte rendu d'hospitalisation complète",
    "Lettre de liaison à la sortie",
    "Compte rendu de séjour",
)
