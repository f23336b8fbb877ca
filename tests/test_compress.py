import onnx
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from medistill.models.compress import (
    ONNX_GRAPH,
    compress_student,
    export_onnx,
    load_for_inference,
    model_disk_mb,
    save_int8,
)
from medistill.models.students import count_parameters, make_student
from medistill.ner.evaluate import efficiency, score_test_sets
from medistill.ner.scoring import predict_tags

LABELS = ["O", "B-DISO", "I-DISO", "B-CHEM", "I-CHEM"]
TEXTS = [
    "Patiente de 63 ans , diabétique de type 2 , hospitalisée pour une dyspnée d' effort .",
    "L' échographie cardiaque montre une fraction d' éjection ventriculaire gauche à 35 % .",
    "Un traitement par furosémide et bisoprolol est introduit , avec une bonne tolérance .",
    "Absence de fièvre ; la CRP est à 12 mg/L et la créatinine à 98 µmol/L .",
    "Le scanner thoracique retrouve un nodule pulmonaire de 8 mm du lobe supérieur droit .",
    "Antécédents : hypertension artérielle , tabagisme sevré , appendicectomie .",
]
SENTENCES = [{"id": str(i), "words": text.split()} for i, text in enumerate(TEXTS)]
KINDS = ("fp32", "int8", "onnx")


def _classifier(path):
    torch.manual_seed(0)  # the (untrained) label head
    return AutoModelForTokenClassification.from_pretrained(
        path,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    ).eval()


def _save_all_kinds(model, tokenizer, root):
    model.save_pretrained(root / "fp32")
    tokenizer.save_pretrained(root / "fp32")
    save_int8(model, tokenizer, root / "int8")
    export_onnx(model, tokenizer, root / "onnx")


@pytest.fixture(scope="module")
def saved(tiny_bert, tmp_path_factory):
    """A tiny student saved plain, as int8 and as ONNX: (fp32 model, tokenizer, folders)."""
    student = make_student(_classifier(tiny_bert), {"layers": 2}, "L2").eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    root = tmp_path_factory.mktemp("compressed")
    _save_all_kinds(student, tokenizer, root)
    return student, tokenizer, {kind: root / kind for kind in KINDS}


def _logits(model, tokenizer):
    batch = tokenizer([s["words"] for s in SENTENCES], is_split_into_words=True, padding=True)
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(batch["input_ids"]),
            attention_mask=torch.tensor(batch["attention_mask"]),
        ).logits


@pytest.mark.parametrize(("kind", "atol"), [("int8", 0.05), ("onnx", 1e-4)])
def test_compressed_model_predicts_like_fp32(saved, kind, atol):
    fp32, tokenizer, folders = saved
    compressed = load_for_inference(folders[kind])
    assert torch.allclose(_logits(compressed, tokenizer), _logits(fp32, tokenizer), atol=atol)
    expected = predict_tags(fp32, tokenizer, SENTENCES, 128, 4, "cpu")
    predicted = predict_tags(compressed, tokenizer, SENTENCES, 128, 4, "cpu")
    words = [
        (a, b) for x, y in zip(expected, predicted, strict=True) for a, b in zip(x, y, strict=True)
    ]
    assert sum(a == b for a, b in words) / len(words) >= 0.95


@pytest.mark.parametrize("kind", KINDS)
def test_load_for_inference_serves_what_evaluation_asks(saved, kind):
    fp32, tokenizer, folders = saved
    model = load_for_inference(folders[kind])
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.medistill_student == fp32.config.medistill_student
    assert not model.training
    if kind != "fp32":  # CPU-only: moving it (to a GPU evaluation would ask for) is a no-op
        assert model.config.medistill_compression["kind"] in ("int8-dynamic", "onnx")
        assert model.to("cuda") is model
    assert count_parameters(model) == count_parameters(fp32)  # int8 weights counted too
    settings = {
        "max_length": 128,
        "batch_size": 4,
        "device": "cpu",
        "latency_runs": 3,
        "latency_threads": 1,
    }
    gold = [{**s, "tags": ["O"] * len(s["words"])} for s in SENTENCES]
    result = score_test_sets(model, tokenizer, {"clean": gold}, settings)
    result |= efficiency(model, tokenizer, gold, settings)
    assert result["latency_ms_b1"] > 0 and 0 <= result["f1"] <= 1


def test_int8_folder_is_also_a_plain_fp32_folder(saved):
    fp32, tokenizer, folders = saved
    reloaded = AutoModelForTokenClassification.from_pretrained(folders["int8"]).eval()
    assert torch.equal(_logits(reloaded, tokenizer), _logits(fp32, tokenizer))


def test_compress_student_compresses_a_saved_student(saved, tmp_path):
    fp32, tokenizer, folders = saved
    compress_student(folders["fp32"], tmp_path / "int8", "int8")
    model = load_for_inference(tmp_path / "int8")
    assert model.config.medistill_compression["kind"] == "int8-dynamic"
    assert torch.allclose(_logits(model, tokenizer), _logits(fp32, tokenizer), atol=0.05)
    with pytest.raises(ValueError, match="int8, int8-per-channel, onnx"):
        compress_student(folders["fp32"], tmp_path / "fp16", "fp16")


def _int8_weight_error(model, fp32) -> float:
    """Summed absolute rounding error of a loaded int8 model's Linear weights."""
    quantized = {
        name: layer.weight().dequantize()
        for name, layer in model.model.named_modules()
        if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear)
    }
    assert quantized  # every Linear was quantised
    return sum(
        (weight - fp32.get_submodule(name).weight).abs().sum().item()
        for name, weight in quantized.items()
    )


def test_int8_per_channel_scales_each_row_and_rounds_less(saved, tmp_path):
    fp32, tokenizer, folders = saved
    compress_student(folders["fp32"], tmp_path / "per-channel", "int8-per-channel")
    model = load_for_inference(tmp_path / "per-channel")
    assert model.config.medistill_compression["weight_scales"] == "per_channel"
    schemes = {
        layer.weight().qscheme()
        for layer in model.model.modules()
        if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear)
    }
    assert schemes == {torch.per_channel_affine}
    assert torch.allclose(_logits(model, tokenizer), _logits(fp32, tokenizer), atol=0.05)
    per_tensor = load_for_inference(folders["int8"])
    assert per_tensor.config.medistill_compression["weight_scales"] == "per_tensor"
    assert _int8_weight_error(model, fp32) < _int8_weight_error(per_tensor, fp32)


def test_onnx_int8_gives_the_graphs_weight_products_int8_weights(saved, tmp_path):
    fp32, tokenizer, folders = saved
    compress_student(folders["fp32"], tmp_path / "onnx-int8", "onnx-int8")
    folder = tmp_path / "onnx-int8"
    model = load_for_inference(folder)
    assert model.config.medistill_compression["kind"] == "onnx"
    assert model.config.medistill_compression["quantization"]["weights"] == "int8 per channel"
    assert [path.name for path in folder.glob("*.onnx")] == [ONNX_GRAPH]  # no fp32 graph left
    products = [n.op_type for n in onnx.load(folder / ONNX_GRAPH).graph.node]
    linears = [m for m in fp32.modules() if isinstance(m, torch.nn.Linear)]
    assert products.count("MatMulInteger") == len(linears)
    # Activations are quantised too: on this tiny random model (logits about 0.08 in size) a
    # few logits move by 0.1, their mean by 0.01.
    error = (_logits(model, tokenizer) - _logits(fp32, tokenizer)).abs()
    assert error.mean() < 0.02 and error.max() < 0.2
    assert model_disk_mb(folder) < model_disk_mb(folders["onnx"])


def test_model_disk_mb_counts_what_inference_reads(saved):
    _, _, folders = saved
    side = ("config.json", "tokenizer.json", "tokenizer_config.json")
    for kind, weights in (("fp32", "model.safetensors"), ("int8", "model_int8.pt")):
        expected = sum((folders[kind] / name).stat().st_size for name in (weights, *side))
        assert model_disk_mb(folders[kind]) == pytest.approx(expected / 2**20)
    assert (folders["onnx"] / ONNX_GRAPH).stat().st_size / 2**20 < model_disk_mb(folders["onnx"])
    assert not (folders["onnx"] / "model.safetensors").exists()


def test_onnx_session_follows_torch_thread_count(saved):
    _, tokenizer, folders = saved
    model = load_for_inference(folders["onnx"])
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        _logits(model, tokenizer)
        assert model._session.get_session_options().intra_op_num_threads == 1
    finally:
        torch.set_num_threads(previous)


def test_int8_minilm_is_smaller_on_disk(minilm_path, tmp_path):
    """A real-size student: int8 Linear weights take a quarter of the fp32 ones (the fp32
    embedding table, 47 of MiniLM's 87 MB, is kept)."""
    model = _classifier(minilm_path)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    model.save_pretrained(tmp_path / "fp32")
    tokenizer.save_pretrained(tmp_path / "fp32")
    save_int8(model, tokenizer, tmp_path / "int8")
    assert model_disk_mb(tmp_path / "int8") < 0.7 * model_disk_mb(tmp_path / "fp32")
