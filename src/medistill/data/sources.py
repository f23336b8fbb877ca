"""Corpus sources: where the text of a distillation corpus comes from, each with its licence.

A corpus (`corpora.NAME.sources` in the config) mixes sources of these kinds:

- `synthetic`: the report generator of `medistill.data.synthetic` (gold entity spans included);
- `text`: plain text, one document per `.txt` file of a folder (`per: file`, the default for a
  folder) or one per non-empty line of a file (`per: line`, the default for a file);
- `jsonl`: JSON lines, optionally gzipped, the text in `text_field` (and a per-record licence
  in `licence_field` when given);
- `e3c`: the E3C JSON layout: JSON lines (optionally gzipped) or a folder of `.json` files, each
  record with `text`, `licence` and `source` fields;
- `huggingface`: a Hugging Face dataset by `name` (+ `config`, `split`, `column`, `revision`),
  or a local `path` to a `save_to_disk` folder or a `.parquet` file, opened by
  `medistill.data.hf_datasets`.

Each reader returns a list of documents `{"id", "text", "source", "licence"[, "entities"]}`.
A source that is missing, empty, not UTF-8 or lacks its configured field raises
`CorpusSourceError`, naming the file and the fix.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from medistill.core.errors import CorpusSourceError
from medistill.core.io import json_lines
from medistill.core.schema import with_schema_defaults
from medistill.data.hf_datasets import load_hub, load_parquet, load_saved, network_allowed
from medistill.data.lexicons import load_lexicons
from medistill.data.synthetic import generate_reports

KINDS = ("synthetic", "text", "jsonl", "e3c", "huggingface")


def source_name(source: dict, index: int) -> str:
    return source.get("name") or f"{source['kind']}-{index}"


def _existing(path: str, where: str, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise CorpusSourceError(
            f"{where}: {what} {p} does not exist; fix `path` in the config or create the file"
        )
    return p


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_text_file(path: Path, where: str) -> str:
    try:
        with _open_text(path) as handle:
            return handle.read()
    except UnicodeDecodeError as error:
        raise CorpusSourceError(
            f"{where}: {path} is not UTF-8 ({error.reason} at byte {error.start}); convert it "
            f"first, e.g. `iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`"
        ) from None
    except (OSError, EOFError) as error:
        raise CorpusSourceError(f"{where}: cannot read {path}: {error}; check the file") from None


def _json_records(path: Path, where: str):
    """Yield `(line_number, record)` from a JSON-lines file (gzipped or not)."""

    def problem(number: int, what: str) -> CorpusSourceError:
        return CorpusSourceError(
            f"{where}: {path} line {number} {what}; fix or remove the line (one JSON object "
            "per line)"
        )

    yield from json_lines(_read_text_file(path, where), problem)


def _field(record: dict, field: str, path: Path, number: int | str, where: str, key: str) -> str:
    value = record.get(field)
    if not isinstance(value, str):
        present = ", ".join(sorted(record)) or "none"
        problem = "is missing" if field not in record else "is not a string"
        raise CorpusSourceError(
            f"{where}: {path} record {number}: field {field!r} {problem} (fields present: "
            f"{present}); set `{key}` in the config to the field that holds it"
        )
    return value


def _empty(path: Path | str, where: str) -> CorpusSourceError:
    return CorpusSourceError(
        f"{where}: {path} holds no document; point `path` at a non-empty source or remove it"
    )


def read_text(source: dict, where: str) -> list[dict]:
    path = _existing(source["path"], where, "path")
    per = source.get("per", "file" if path.is_dir() else "line")
    licence = source["licence"]
    docs = []
    if per == "file":
        files = sorted(path.glob(source["glob"])) if path.is_dir() else [path]
        for file in files:
            text = _read_text_file(file, where)
            if text.strip():
                docs.append({"id": file.stem, "text": text, "licence": licence})
    else:
        if path.is_dir():
            raise CorpusSourceError(
                f"{where}: {path} is a folder but `per: line` reads one file; use `per: file` "
                "or give a file"
            )
        for number, line in enumerate(_read_text_file(path, where).splitlines(), 1):
            if line.strip():
                docs.append({"id": f"{path.stem}-{number}", "text": line, "licence": licence})
    if not docs:
        raise _empty(path, where)
    return docs


def read_jsonl(source: dict, where: str) -> list[dict]:
    path = _existing(source["path"], where, "path")
    if path.is_dir():
        raise CorpusSourceError(f"{where}: {path} is a folder; `jsonl` reads one file")
    field = source["text_field"]
    licence_field = source.get("licence_field")
    id_field = source["id_field"]
    docs = []
    for number, record in _json_records(path, where):
        text = _field(record, field, path, f"line {number}", where, "text_field")
        licence = source.get("licence")
        if licence_field:
            licence = _field(record, licence_field, path, f"line {number}", where, "licence_field")
        docs.append(
            {"id": str(record.get(id_field, f"{path.stem}-{number}")), "text": text}
            | {"licence": licence}
        )
    if not docs:
        raise _empty(path, where)
    return docs


def read_e3c(source: dict, where: str) -> list[dict]:
    """E3C records (`text`, `licence`, `source`): JSON lines or a folder of `.json` files."""
    path = _existing(source["path"], where, "path")
    records: list[tuple[str, dict, Path, str]] = []
    if path.is_dir():
        for file in sorted(path.rglob("*.json")):
            try:
                record = json.loads(_read_text_file(file, where))
            except json.JSONDecodeError as error:
                raise CorpusSourceError(
                    f"{where}: {file} is not valid JSON ({error.msg}); fix or remove the file"
                ) from None
            records.append((file.stem, record, file, "1"))
    else:
        for number, record in _json_records(path, where):
            records.append((str(record.get("id", number)), record, path, f"line {number}"))
    docs = []
    for ident, record, file, number in records:
        text = _field(record, "text", file, number, where, "path (an E3C file)")
        licence = source.get("licence") or _field(
            record, "licence", file, number, where, "licence (the source's licence)"
        )
        docs.append(
            {"id": str(record.get("id", ident)), "text": text, "licence": licence}
            | ({"origin": record["source"]} if isinstance(record.get("source"), str) else {})
        )
    if not docs:
        raise _empty(path, where)
    return docs


def read_huggingface(source: dict, where: str) -> list[dict]:
    """A Hugging Face dataset split's text column: from the hub (`name`) or a local `path`."""
    column = source.get("column", "text")
    split = source["split"]
    if "path" in source:
        path = _existing(source["path"], where, "path")
        if path.is_dir():
            try:
                data = load_saved(path)
            except FileNotFoundError as error:
                raise CorpusSourceError(
                    f"{where}: {path} is not a `save_to_disk` folder ({error}); save it with "
                    "`Dataset.save_to_disk` or give a .parquet file"
                ) from None
            if isinstance(data, dict):  # a DatasetDict (a dict of splits), not one Dataset
                if split not in data:
                    raise CorpusSourceError(
                        f"{where}: {path} has no split {split!r} (splits: {', '.join(data)}); "
                        "set `split`"
                    )
                data = data[split]
        else:
            data = load_parquet(path)
        label = str(path)
    else:
        label = f"hub dataset {source['name']}"
        try:
            data = load_hub(
                source["name"],
                source.get("config"),
                source.get("revision"),
                allow_network=network_allowed(),
                split=split,
            )
        except Exception as error:  # noqa: BLE001 - datasets raises many types
            raise CorpusSourceError(
                f"{where}: cannot load {label} (config {source.get('config')}, split {split}): "
                f"{error}; check the name, or download it first with network allowed "
                "(`allow_network: true`)"
            ) from None
    if column not in data.column_names:
        raise CorpusSourceError(
            f"{where}: {label} has no column {column!r} (columns: "
            f"{', '.join(data.column_names)}); set `column`"
        )
    docs = [
        {"id": f"{source.get('name', Path(label).stem)}-{i}", "text": text}
        | {"licence": source["licence"]}
        for i, text in enumerate(data[column])
        if isinstance(text, str) and text.strip()
    ]
    if not docs:
        raise _empty(label, where)
    return docs


def corpus_licence(corpus: dict) -> str:
    """A corpus's licence as its config declares it: its own `licence`, else its sources' joined
    (an e3c source, or a jsonl one with `licence_field`, names none: its records carry theirs)."""
    if "licence" in corpus:
        return corpus["licence"]
    sources = corpus["sources"]
    licences = {s["licence"] if "licence" in s else "per-record licences" for s in sources}
    return " AND ".join(sorted(licences))


def read_synthetic(source: dict, where: str) -> list[dict]:
    kwargs = {k: source[k] for k in ("heldout_fraction",) if k in source}
    docs = generate_reports(source["n_docs"], seed=source["seed"], lexicons=load_lexicons(**kwargs))
    licence = source["licence"]
    for doc in docs:
        doc["licence"] = licence
    return docs


READERS = {
    "synthetic": read_synthetic,
    "text": read_text,
    "jsonl": read_jsonl,
    "e3c": read_e3c,
    "huggingface": read_huggingface,
}


def read_source(source: dict, where: str) -> list[dict]:
    """The documents of one configured source, each with its `licence`."""
    source = with_schema_defaults(source, "corpus_source")
    kind = source["kind"]
    if kind not in READERS:
        raise CorpusSourceError(f"{where}: unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    if (
        kind not in ("synthetic", "e3c")
        and not source.get("licence")
        and not source.get("licence_field")
    ):
        raise CorpusSourceError(
            f"{where}: no licence; add `licence: SPDX-ID` (the licence of this text) to the source"
        )
    return READERS[kind](source, where)
