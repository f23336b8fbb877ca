"""The corpus build: read a corpus's sources, normalise, filter by length, deduplicate, mix them
by quota and write the documents with their statistics.

A corpus is `corpora.NAME` in the config; its sources (`medistill.data.sources`) are mixed by their
`n_docs` or `weight`, sampled deterministically from the corpus `seed`.
"""

from __future__ import annotations

import os
import random
from collections import Counter

from medistill.core.errors import CorpusSpecError
from medistill.core.io import write_json, write_jsonl
from medistill.core.schema import with_schema_defaults
from medistill.data.dedup import Deduplicator
from medistill.data.normalise import normalise_document
from medistill.data.sentences import split_sentences
from medistill.data.sources import read_source, source_name


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
    spec = with_schema_defaults(spec, "corpus")
    min_chars, max_chars = spec["min_chars"], spec.get("max_chars")
    names = [source_name(s, i) for i, s in enumerate(spec["sources"])]
    if len(set(names)) != len(names):
        raise CorpusSpecError(f"{where}: two sources share a name ({names}); give each a `name`")
    prefix = len(names) > 1
    per_source, details, seen_ids = [], {}, set()
    dedup = Deduplicator(spec["dedup"])
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
        chosen = _sample(kept, quota, spec["seed"], name)
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
    docs, stats = collect_documents(spec, where=f"corpora.{name}")
    write_jsonl(docs, docs_path)
    write_json(stats, stats_path)
    return stats
