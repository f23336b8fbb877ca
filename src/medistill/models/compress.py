"""Post-training compression of a student for CPU inference: int8 weights, or an ONNX graph.

Every kind is saved as a model folder with the usual `config.json` (labels, student spec) and
tokenizer files, plus its weights; `config.medistill_compression` names the kind, and
`load_for_inference` turns any such folder back into a model that is called like a
transformers token classifier: `model(input_ids=..., attention_mask=...).logits`.

- `int8-dynamic`: every `nn.Linear` holds int8 weights; activations are quantised on the fly,
  batch by batch, so no calibration data is needed. The folder keeps the fp32 student too (it
  is a normal `save_pretrained` folder), the int8 weights are `model_int8.pt`. Weights have one
  scale per matrix (`per_tensor`, size setting `compress: int8`) or one per output row
  (`per_channel`, `compress: int8-per-channel`): the same speed, less rounding error where
  rows differ in range.
- `onnx`: the fp32 graph in `model.onnx`, run by ONNX Runtime; `compress: onnx-int8` writes
  that graph with ONNX Runtime's own dynamic quantisation (int8 weights, one scale per output
  channel; activations quantised on the fly to the full 8 bits, where torch's dynamic path
  keeps 7: the likely, not isolated, reason this kind lost less F1 than `int8-per-channel` on
  E3C, docs/studies/e3c.md).
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer
from transformers.modeling_outputs import TokenClassifierOutput

from medistill.core.io import atomic_dir, read_json

INT8_KIND = "int8-dynamic"
ONNX_KIND = "onnx"
INT8_WEIGHTS = "model_int8.pt"
ONNX_GRAPH = "model.onnx"
ONNX_FP32_GRAPH = "model_fp32.onnx"  # an `onnx-int8` export's graph before quantisation
ONNX_INT8 = {"tool": "onnxruntime.quantization.quantize_dynamic", "weights": "int8 per channel"}
# The opset torch 2.13's exporter writes natively (its default, 20, adds a conversion pass).
ONNX_OPSET = 18
# The files a folder's inference reads besides its weights: config and tokenizer.
INFERENCE_SIDE_FILES = (
    "config.json",
    "gliner_config.json",  # a GLiNER folder's (generative_tagging)
    "tokenizer*",
    "vocab*",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
    "*.model",  # sentencepiece
)
# fp32 weights: safetensors, or the pickled state dict of older hub snapshots (GLiNER's)
WEIGHT_FILES = {
    None: ("model*.safetensors", "pytorch_model*.bin"),
    INT8_KIND: (INT8_WEIGHTS,),
    ONNX_KIND: (ONNX_GRAPH,),
}


@contextmanager
def _quiet_eager_quantization():
    """Silence torch's notices that eager-mode quantisation will move to torchao.

    quantize_dynamic is the dependency-free int8 path of the pinned torch; the notices (and
    the TypedStorage one that loading quantised tensors triggers) say nothing about this model
    and would repeat at every load.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        warnings.filterwarnings("ignore", message=r"TypedStorage is deprecated")
        yield


WEIGHT_SCALES = {
    "per_tensor": torch.ao.quantization.default_dynamic_qconfig,
    "per_channel": torch.ao.quantization.per_channel_dynamic_qconfig,
}


def quantize_int8(model, weight_scales: str = "per_tensor") -> nn.Module:
    """A CPU copy of `model` whose `nn.Linear` layers hold int8 weights (dynamic quantisation),
    with one scale per weight matrix or per output row (`weight_scales`, see WEIGHT_SCALES).

    Embeddings and LayerNorms stay fp32: dynamic quantisation speeds up matrix products, and
    an embedding is a table lookup with nothing to speed up.
    """
    model = copy.deepcopy(model).cpu().eval()
    with _quiet_eager_quantization():
        return torch.ao.quantization.quantize_dynamic(
            model, {nn.Linear: WEIGHT_SCALES[weight_scales]}, dtype=torch.qint8, inplace=True
        )


def int8_weight_scales(config) -> str:
    """How an int8 folder's weights were scaled; folders saved before the choice existed
    were per tensor."""
    return config.medistill_compression.get("weight_scales", "per_tensor")


def save_int8(
    model_fp32, tokenizer, out_dir: str | os.PathLike, weight_scales: str = "per_tensor"
) -> None:
    """The fp32 student as a `save_pretrained` folder, plus its int8 weights in model_int8.pt."""
    fp32 = copy.deepcopy(model_fp32).cpu().eval()
    fp32.config.medistill_compression = {
        "kind": INT8_KIND,
        "weights": INT8_WEIGHTS,
        "dtype": "qint8",
        "weight_scales": weight_scales,
        "quantized_modules": ["Linear"],
        "engine": torch.backends.quantized.engine,
    }
    quantized = quantize_int8(fp32, weight_scales)

    def write(folder: Path) -> None:
        fp32.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        torch.save(quantized.state_dict(), folder / INT8_WEIGHTS)

    with atomic_dir(out_dir) as folder:
        write(folder)


class _LogitsOnly(nn.Module):
    """The model with plain tensor inputs and outputs, as graph exporters need."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_onnx(model, tokenizer, out_dir: str | os.PathLike, int8: bool = False) -> None:
    """Config and tokenizer (no fp32 weights) plus `model.onnx`, batch and sequence dynamic;
    with `int8`, the graph's matrix products get int8 weights (`quantize_onnx_int8`).

    The dynamo exporter (torch.export) is used: the legacy TorchScript exporter of torch 2.13
    traces transformers 5's attention-mask code into a graph that is wrong for other shapes
    (logits off by 0.3 on MiniLM), while the dynamo graph matches eager to 1e-6. The graph is
    one file (no external data): a student is far below ONNX's 2 GB protobuf limit.
    """
    model = copy.deepcopy(model).cpu().eval()
    # Two texts of different lengths, so the example batch has padding to trace through.
    example = tokenizer(
        ["Patiente de 63 ans, diabétique.", "Pas de fièvre."], padding=True, return_tensors="pt"
    )
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    config = copy.deepcopy(model.config)
    config.medistill_compression = {
        "kind": ONNX_KIND,
        "weights": ONNX_GRAPH,
        "opset": ONNX_OPSET,
        "exporter": "torch.onnx dynamo",
    }
    if int8:
        config.medistill_compression["quantization"] = ONNX_INT8

    def write(folder: Path) -> None:
        graph = folder / (ONNX_FP32_GRAPH if int8 else ONNX_GRAPH)
        torch.onnx.export(
            _LogitsOnly(model).eval(),
            (example["input_ids"], example["attention_mask"]),
            graph,
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            opset_version=ONNX_OPSET,
            dynamo=True,
            external_data=False,
            dynamic_shapes={
                "input_ids": {0: batch, 1: sequence},
                "attention_mask": {0: batch, 1: sequence},
            },
            verbose=False,
        )
        if int8:
            quantize_onnx_int8(graph, folder / ONNX_GRAPH)
            graph.unlink()
        config.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    with atomic_dir(out_dir) as folder:
        write(folder)


def quantize_onnx_int8(graph: Path, out_graph: Path) -> None:
    """ONNX Runtime's dynamic quantisation of `graph` into `out_graph`: every MatMul gets int8
    weights with one scale per output channel; activations are quantised at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(graph, out_graph, per_channel=True, weight_type=QuantType.QInt8)


def compress_student(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    kind: str,
    trust_remote_code: bool = False,
) -> None:
    """Compress a trained student's folder into `out_dir`; `kind` is a size's `compress`
    setting: `int8` or `int8-per-channel` (`save_int8`), `onnx` or `onnx-int8` (`export_onnx`)."""
    savers = {
        "int8": functools.partial(save_int8, weight_scales="per_tensor"),
        "int8-per-channel": functools.partial(save_int8, weight_scales="per_channel"),
        "onnx": export_onnx,
        "onnx-int8": functools.partial(export_onnx, int8=True),
    }
    if kind not in savers:
        raise ValueError(f"unknown compression '{kind}'; use one of {', '.join(savers)}")
    model = AutoModelForTokenClassification.from_pretrained(
        model_dir, trust_remote_code=trust_remote_code
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    savers[kind](model, tokenizer, out_dir)


def compress_runs(
    model_dir: str | os.PathLike,
    seeds_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    out_seeds_dir: str | os.PathLike,
    kind: str,
    trust_remote_code: bool = False,
) -> None:
    """Compress a student's kept run and each of its other seeds' runs (`seeds_dir/seed-N`),
    so the compressed size reports a mean over the same seeds."""
    compress_student(model_dir, out_dir, kind, trust_remote_code)
    energy = Path(model_dir) / "training_energy.json"  # what training the student cost
    if energy.exists():
        shutil.copyfile(energy, Path(out_dir) / energy.name)
    Path(out_seeds_dir).mkdir(parents=True, exist_ok=True)
    for run in sorted(Path(seeds_dir).glob("seed-*")):
        compress_student(run, Path(out_seeds_dir) / run.name, kind, trust_remote_code)


def compression_kind(config) -> str | None:
    """`int8-dynamic`, `onnx`, or None for a plain (fp32) model folder's config."""
    return (getattr(config, "medistill_compression", None) or {}).get("kind")


class _CpuInferenceModel(nn.Module):
    """What evaluation asks of a model, for a compressed one that only runs on the CPU.

    `to()` leaves it where it is (inputs are moved to the CPU instead, and logits come back on
    the CPU); `base_model` and the parameters are the wrapped model's (for ONNX, the fp32
    architecture on the meta device), so `count_parameters` counts them like the
    uncompressed student's.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.config = model.config

    def to(self, *args, **kwargs):
        return self

    @property
    def base_model(self):
        return self.model.base_model


class Int8Model(_CpuInferenceModel):
    """A dynamically quantised token classifier (int8 kernels are CPU-only)."""

    def forward(self, input_ids, attention_mask=None):
        if attention_mask is not None:
            attention_mask = attention_mask.cpu()
        return self.model(input_ids=input_ids.cpu(), attention_mask=attention_mask)


class OnnxModel(_CpuInferenceModel):
    """An ONNX Runtime session over `model.onnx`.

    The session uses as many threads as torch does (`torch.get_num_threads()` when loaded),
    and is restarted when that number changes, so that a latency measured after
    `torch.set_num_threads(n)` runs on n threads as it does for the PyTorch models.
    """

    def __init__(self, graph: Path, architecture):
        super().__init__(architecture)
        self.graph = graph
        self._start_session()

    def _start_session(self) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self._session = onnxruntime.InferenceSession(
            str(self.graph), options, providers=["CPUExecutionProvider"]
        )
        self._threads = options.intra_op_num_threads

    def forward(self, input_ids, attention_mask=None):
        if torch.get_num_threads() != self._threads:
            self._start_session()
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        (logits,) = self._session.run(
            ["logits"],
            {
                "input_ids": input_ids.cpu().numpy(),
                "attention_mask": attention_mask.cpu().numpy(),
            },
        )
        return TokenClassifierOutput(logits=torch.from_numpy(logits))


def load_for_inference(model_dir: str | os.PathLike, trust_remote_code: bool = False):
    """The token classifier of a model folder, whatever its compression (see module docstring).

    Plain folders give the transformers model; int8 ones the fp32 architecture rebuilt from
    the config, quantised, then given the saved int8 weights; ONNX ones an ONNX Runtime
    session. All are in eval mode and answer `model(input_ids=..., attention_mask=...).logits`.
    """
    model_dir = Path(model_dir)
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=trust_remote_code)
    kind = compression_kind(config)
    if kind is None:
        return AutoModelForTokenClassification.from_pretrained(
            model_dir, trust_remote_code=trust_remote_code
        ).eval()
    if kind == INT8_KIND:
        architecture = AutoModelForTokenClassification.from_config(
            config, trust_remote_code=trust_remote_code
        )
        quantized = quantize_int8(architecture, int8_weight_scales(config))
        with _quiet_eager_quantization():
            quantized.load_state_dict(torch.load(model_dir / INT8_WEIGHTS, weights_only=True))
        return Int8Model(quantized).eval()
    if kind == ONNX_KIND:
        # The fp32 architecture without memory: only its shape is used (parameter counts).
        with torch.device("meta"):
            architecture = AutoModelForTokenClassification.from_config(
                config, trust_remote_code=trust_remote_code
            )
        return OnnxModel(model_dir / ONNX_GRAPH, architecture).eval()
    raise ValueError(f"{model_dir}: unknown compression kind {kind!r}")


def model_disk_mb(model_dir: str | os.PathLike) -> float:
    """MiB of what inference reads from a model folder: the weights of its kind (fp32
    safetensors, int8 state dict or ONNX graph), config and tokenizer files; the rest of the
    folder (an int8 folder's fp32 weights, training history, model card) is not counted."""
    model_dir = Path(model_dir)
    config_file = model_dir / "config.json"  # a GLiNER folder has none
    config = read_json(config_file) if config_file.is_file() else {}
    compression = config.get("medistill_compression") or {}
    patterns = [*WEIGHT_FILES[compression.get("kind")], *INFERENCE_SIDE_FILES]
    needed = {path for pattern in patterns for path in model_dir.glob(pattern) if path.is_file()}
    return sum(path.stat().st_size for path in needed) / 2**20
