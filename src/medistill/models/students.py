"""Student models made from a teacher: fewer encoder layers and, optionally, narrower ones.

A student spec (a `sizes` entry of the config) says how many layers the student has, how wide
it is and how it starts:

- `teacher` (default): a copy of some of the teacher's layers, width kept (DistilBERT-style).
  The student begins close to the teacher; distillation repairs what the removed layers did.
- `svd`: the same layer selection, made narrower: every weight is projected onto the teacher's
  strongest hidden directions, each kept attention head is refactored by SVD at the student's
  head size, the strongest feed-forward units are kept (see `_svd_student`), so that a narrow
  student starts as an approximation of the teacher rather than from noise.
- `random`: the student's architecture freshly initialised; the baseline that shows what the
  teacher's weights are worth.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from medistill.core.schema import with_schema_defaults

INITS = ("teacher", "svd", "random")
LAYER_SELECTIONS = ("uniform", "first", "last")
# Seed of the fresh weights of `random` students (and of the parts `svd` does not set): the
# same spec gives the same student whatever the caller's random state.
INIT_SEED = 0


def select_layers(teacher_layers: int, student_layers: int, strategy: str = "uniform") -> list[int]:
    """Teacher layer indices to keep; `uniform` spreads them from the first to the last layer."""
    if not 1 <= student_layers <= teacher_layers:
        raise ValueError(f"a student needs 1 to {teacher_layers} layers, not {student_layers}")
    if strategy == "first":
        return list(range(student_layers))
    if strategy == "last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    if strategy == "uniform":
        return [int(round(x)) for x in np.linspace(0, teacher_layers - 1, student_layers)]
    raise ValueError(f"unknown layer selection '{strategy}'; use uniform, first or last")


def resolve_student_spec(spec: dict, teacher_config: dict) -> dict:
    """The spec with every default filled in from the teacher's config (a `config.to_dict()`).

    Default heads keep the teacher's head size when the student's width allows it, so a
    narrower student has fewer heads of the usual size rather than many tiny ones.
    """
    spec = with_schema_defaults(spec, "size")
    teacher_hidden = teacher_config["hidden_size"]
    hidden = spec.get("hidden_size", teacher_hidden)
    head_size = teacher_hidden // teacher_config["num_attention_heads"]
    default_heads = (
        hidden // head_size if hidden % head_size == 0 else teacher_config["num_attention_heads"]
    )
    return {
        "layers": spec["layers"],
        "layer_selection": spec["layer_selection"],
        "hidden_size": hidden,
        "heads": spec.get("heads", default_heads),
        "intermediate_size": spec.get(
            "intermediate_size",
            round(teacher_config["intermediate_size"] * hidden / teacher_hidden),
        ),
        "init": spec["init"],
    }


def validate_student_spec(spec: dict, teacher_config: dict) -> list[str]:
    """Human-readable problems of a student spec for this teacher; empty when it can be built."""
    if not isinstance(spec.get("layers"), int) or spec["layers"] < 1:
        return [f"`layers` must be a whole number >= 1, not {spec.get('layers')!r}"]
    spec = with_schema_defaults(spec, "size")
    init = spec["init"]
    if init not in INITS:
        return [f"`init` must be one of {', '.join(INITS)}, not {init!r}"]
    resolved = resolve_student_spec(spec, teacher_config)
    problems = []
    hidden, heads = resolved["hidden_size"], resolved["heads"]
    intermediate = resolved["intermediate_size"]
    teacher_hidden = teacher_config["hidden_size"]
    teacher_heads = teacher_config["num_attention_heads"]
    teacher_layers = teacher_config["num_hidden_layers"]
    for key, value in (("hidden_size", hidden), ("heads", heads)):
        if not isinstance(value, int) or value < 1:
            problems.append(f"`{key}` must be a whole number >= 1, not {value!r}")
    if not isinstance(intermediate, int) or intermediate <= 0:
        problems.append(f"`intermediate_size` must be a whole number > 0, not {intermediate!r}")
    if problems:
        return problems
    if hidden % heads:
        problems.append(f"`hidden_size` {hidden} is not divisible by `heads` {heads}")
    if init == "random":
        return problems  # any shape can be freshly initialised; no teacher layer is selected

    selection = resolved["layer_selection"]
    if resolved["layers"] > teacher_layers:
        problems.append(
            f"`layers` {resolved['layers']} is more than the teacher's {teacher_layers} "
            f"layers (init {init} selects teacher layers; use init random for a deeper student)"
        )
    if isinstance(selection, list):
        if len(selection) != resolved["layers"]:
            problems.append(
                f"`layer_selection` lists {len(selection)} layers but `layers` is "
                f"{resolved['layers']}"
            )
        outside = [i for i in selection if not isinstance(i, int) or not 0 <= i < teacher_layers]
        if outside:
            problems.append(
                f"`layer_selection` indices {outside} are outside the teacher's layers "
                f"0..{teacher_layers - 1}"
            )
        repeated = sorted({i for i in selection if selection.count(i) > 1}, key=str)
        if repeated:
            problems.append(f"`layer_selection` repeats teacher layers {repeated}")
    elif selection not in LAYER_SELECTIONS:
        problems.append(
            f"`layer_selection` must be one of {', '.join(LAYER_SELECTIONS)} or a list of "
            f"teacher layer indices, not {selection!r}"
        )

    if init == "teacher":
        teacher_shape = {
            "hidden_size": teacher_hidden,
            "heads": teacher_heads,
            "intermediate_size": teacher_config["intermediate_size"],
        }
        for key, value in teacher_shape.items():
            if key in spec and spec[key] != value:
                problems.append(
                    f"`{key}` {spec[key]} differs from the teacher's {value}; init teacher "
                    "copies whole layers, shape included (init svd narrows them, init random "
                    "takes any shape)"
                )
        return problems
    # svd picks hidden directions, heads, head dimensions and feed-forward units of the teacher
    if hidden > teacher_hidden:
        problems.append(
            f"`hidden_size` {hidden} is larger than the teacher's {teacher_hidden}; init svd "
            "can only keep or narrow the teacher's width (use init random)"
        )
    if heads > teacher_heads:
        problems.append(f"`heads` {heads} is more than the teacher's {teacher_heads}")
    elif hidden % heads == 0 and hidden // heads > teacher_hidden // teacher_heads:
        problems.append(
            f"`hidden_size` / `heads` = {hidden // heads} is larger than the teacher's head "
            f"size {teacher_hidden // teacher_heads}; use more `heads`"
        )
    if intermediate > teacher_config["intermediate_size"]:
        problems.append(
            f"`intermediate_size` {intermediate} is larger than the teacher's "
            f"{teacher_config['intermediate_size']}"
        )
    return problems


def _layer_list(model) -> tuple[nn.Module, str]:
    encoder = getattr(model.base_model, "encoder", model.base_model)
    for name in ("layer", "layers"):
        if isinstance(getattr(encoder, name, None), nn.ModuleList):
            return encoder, name
    raise TypeError(f"{type(model).__name__}: no encoder layer list found to select layers from")


def make_student(teacher, spec: dict, size_name: str = ""):
    """A student of `teacher` built as `spec` says (see the module docstring); the teacher is
    left untouched and the resolved spec is recorded in `student.config.medistill_student`."""
    teacher_config = teacher.config.to_dict()
    problems = validate_student_spec(spec, teacher_config)
    if problems:
        raise ValueError(f"student spec {size_name or spec}: " + "; ".join(problems))
    spec = resolve_student_spec(spec, teacher_config)
    selection = spec["layer_selection"]
    if spec["init"] == "random":
        kept = []
    elif isinstance(selection, list):
        kept = list(selection)
    else:
        kept = select_layers(teacher_config["num_hidden_layers"], spec["layers"], selection)

    if spec["init"] == "teacher":
        student = copy.deepcopy(teacher)
        encoder, name = _layer_list(student)
        setattr(encoder, name, nn.ModuleList(getattr(encoder, name)[i] for i in kept))
        student.config.num_hidden_layers = spec["layers"]
    else:
        student = _fresh_student(teacher, spec)
        if spec["init"] == "svd":
            _svd_student(teacher, student, kept)
    student.config.medistill_student = {"size": size_name, **spec, "teacher_layers_kept": kept}
    return student


def _fresh_student(teacher, spec: dict):
    """The teacher's architecture and settings (labels included) at the student's shape."""
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = spec["layers"]
    config.hidden_size = spec["hidden_size"]
    config.num_attention_heads = spec["heads"]
    config.intermediate_size = spec["intermediate_size"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        return type(teacher)(config).to(teacher.device)


class _HiddenProjection:
    """Maps the teacher's hidden space (width T) onto the student's (width S <= T).

    The student's hidden state stands for `scale * basis @ h`, h the teacher's, `basis` [S, T]
    having orthonormal rows (see `_hidden_basis`). Every weight is rewritten through it:
    what writes into the hidden space is multiplied by it on the left, what reads from it by
    its pseudo-inverse on the right, so each linear map of the teacher restricted to the kept
    directions is kept exactly. scale = sqrt(S / T) keeps the per-coordinate magnitude the
    student's LayerNorms produce consistent with the teacher's, assuming the kept directions
    carry most of a hidden vector's energy (they are chosen for it; on MiniLM, halving its
    width, the student's hidden states were closer to the teacher's than with scale 1).

    LayerNorm is what a plain rotation would break: it removes each vector's mean over its
    coordinates and then multiplies coordinate by coordinate. The basis maps the teacher's
    all-ones direction onto the student's (and its other rows are orthogonal to both), so the
    student removes exactly the mean the teacher removes; the per-coordinate gain becomes
    the diagonal of basis @ diag(gain) @ basis.T, which is exact for a basis made of teacher
    coordinates, and close for `_hidden_basis`'s, which is as near to that as LayerNorm allows.
    """

    def __init__(self, basis: torch.Tensor):
        self.basis = basis
        self.scale = math.sqrt(basis.shape[0] / basis.shape[1])

    def write(self, x: torch.Tensor) -> torch.Tensor:
        """A vector, or the output side of a weight ([T, ...]), that lands in the hidden space."""
        return self.scale * self.basis @ x

    def read(self, weight: torch.Tensor) -> torch.Tensor:
        """The input side of a weight [..., T] that reads hidden states. Embedding tables too:
        the tied output layer reads hidden states through them, and the LayerNorm after the
        embedding sum ignores their overall scale."""
        return weight @ self.basis.T / self.scale

    def layer_norm(self, teacher_norm: nn.LayerNorm, student_norm: nn.LayerNorm) -> None:
        student_norm.weight.copy_(self.basis.square() @ teacher_norm.weight)
        student_norm.bias.copy_(self.write(teacher_norm.bias))


def _hidden_basis(teacher, width: int) -> torch.Tensor:
    """The [width, T] basis of `_HiddenProjection`: the teacher's strongest hidden coordinates,
    adjusted so that LayerNorm's mean removal commutes with the projection.

    Coordinates are ranked, without data, by the energy LayerNorm outputs put in them: a
    normalised value times the gain plus the bias has energy gain^2 + bias^2, summed over the
    model's LayerNorms. The basis is then
    - one row that maps the teacher's normalised all-ones vector onto the student's, and
    - width - 1 rows spanning the zero-mean part of the kept coordinates, rotated within the
      student's zero-mean subspace to be as close as possible to the plain selection of those
      coordinates (orthogonal Procrustes), which keeps LayerNorm gains near-diagonal.
    At width == T this is the identity. Principal directions of the word embeddings (or of the
    hidden states of random token sequences) were tried instead: their rotations mix gains of
    very different sizes, and the student's hidden states ended up further from the teacher's.
    """
    hidden = teacher.config.hidden_size
    energy = sum(
        module.weight.square() + module.bias.square()
        for module in teacher.modules()
        if isinstance(module, nn.LayerNorm) and module.weight.shape == (hidden,)
    )
    kept = energy.topk(width).indices.sort().values
    selection = torch.zeros(width, hidden, device=energy.device)
    selection[torch.arange(width), kept] = 1.0
    # The kept coordinates' zero-mean parts span `width` directions: the width - 1 differences
    # between kept coordinates (singular value 1) are kept; the last one, their common offset
    # from the mean, is mostly the all-ones direction, which the `means` row already maps.
    centred = selection - selection.mean(dim=1, keepdim=True)
    directions = torch.linalg.svd(centred, full_matrices=False).Vh[: width - 1]
    centring = torch.eye(width, device=energy.device) - 1.0 / width
    student_zero_mean = torch.linalg.qr(centring[:, : width - 1]).Q
    u, _, vh = torch.linalg.svd(student_zero_mean.T @ selection @ directions.T)
    means = torch.full((width, hidden), 1.0 / math.sqrt(width * hidden), device=energy.device)
    return means + student_zero_mean @ u @ vh @ directions


def _balanced_factors(left: torch.Tensor, right: torch.Tensor, rank: int):
    """A [m, rank], B [n, rank] with A @ B.T the best rank-`rank` approximation of
    left @ right.T (inner size d), singular values split evenly between the two sides.

    Works through QR of the thin factors, so its cost grows with d, not with m x n.
    """
    left_q, left_r = torch.linalg.qr(left)
    right_q, right_r = torch.linalg.qr(right)
    u, s, vh = torch.linalg.svd(left_r @ right_r.T)
    root = s[:rank].sqrt()
    return left_q @ u[:, :rank] * root, right_q @ vh[:rank].T * root


def _project_attention(teacher_attention, student_attention, projection: _HiddenProjection):
    """Keep the heads that write most into the kept hidden directions; fit each kept head's
    query-key and value-output circuits at the student's head size.

    A head only acts through two bilinear maps: its attention scores x_i^T (Wq^T Wk) x_j and
    its output Wo Wv x_j. Each kept head's two maps (projected onto the student's hidden space)
    are refactored by SVD at the student's head size: exact when the head size is kept, the best
    low-rank approximation when it shrinks. Heads are ranked by the norm of their projected
    value-output map, i.e. by how much they can write into the student's hidden space.

    Two biases are moved without loss: a key bias adds the same amount to every score of a
    query, which softmax ignores; a value bias adds Wo bv to the output whatever the attention
    weights (they sum to one), so it joins the output bias, dropped heads' included.
    """
    teacher_self, student_self = teacher_attention.self, student_attention.self
    teacher_out, student_out = teacher_attention.output, student_attention.output
    heads, head_size = teacher_self.num_attention_heads, teacher_self.attention_head_size
    student_heads = student_self.num_attention_heads
    student_head_size = student_self.attention_head_size

    query = projection.read(teacher_self.query.weight).view(heads, head_size, -1)
    query_bias = teacher_self.query.bias.view(heads, head_size, 1)
    key = projection.read(teacher_self.key.weight).view(heads, head_size, -1)
    value = projection.read(teacher_self.value.weight).view(heads, head_size, -1)
    output = projection.write(teacher_out.dense.weight).view(-1, heads, head_size).transpose(0, 1)
    output_bias = teacher_out.dense.bias + teacher_out.dense.weight @ teacher_self.value.bias

    # ||Wo Wv||_F^2 = sum((Wo^T Wo) * (Wv Wv^T)), without forming the [S, S] product
    strength = ((output.transpose(1, 2) @ output) * (value @ value.transpose(1, 2))).sum((1, 2))
    kept = strength.topk(student_heads).indices.sort().values.tolist()
    # the student divides scores by sqrt(its head size), the teacher by sqrt(its own)
    score_scale = math.sqrt(student_head_size / head_size)
    queries, keys, values, outputs = [], [], [], []
    for head in kept:
        query_side = torch.cat([query[head], query_bias[head]], dim=1).T * score_scale
        new_query, new_key = _balanced_factors(query_side, key[head].T, student_head_size)
        new_output, new_value = _balanced_factors(output[head], value[head].T, student_head_size)
        queries.append(new_query.T)
        keys.append(new_key.T)
        values.append(new_value.T)
        outputs.append(new_output)
    queries = torch.cat(queries)
    student_self.query.weight.copy_(queries[:, :-1])
    student_self.query.bias.copy_(queries[:, -1])
    student_self.key.weight.copy_(torch.cat(keys))
    student_self.key.bias.zero_()
    student_self.value.weight.copy_(torch.cat(values))
    student_self.value.bias.zero_()
    student_out.dense.weight.copy_(torch.cat(outputs, dim=1))
    student_out.dense.bias.copy_(projection.write(output_bias))
    projection.layer_norm(teacher_out.LayerNorm, student_out.LayerNorm)


def _project_feed_forward(teacher_layer, student_layer, projection: _HiddenProjection):
    """Keep the feed-forward units with the largest projected input x output weight norms.

    The activation acts unit by unit, so units can be kept or dropped but not mixed; a unit's
    contribution scales with the norm of what it reads times the norm of what it writes.
    """
    teacher_in, student_in = teacher_layer.intermediate.dense, student_layer.intermediate.dense
    teacher_out, student_out = teacher_layer.output.dense, student_layer.output.dense
    reads = projection.read(teacher_in.weight)
    writes = projection.write(teacher_out.weight)
    strength = reads.norm(dim=1) * writes.norm(dim=0)
    kept = strength.topk(student_in.out_features).indices.sort().values
    student_in.weight.copy_(reads[kept])
    student_in.bias.copy_(teacher_in.bias[kept])
    student_out.weight.copy_(writes[:, kept])
    student_out.bias.copy_(projection.write(teacher_out.bias))
    projection.layer_norm(teacher_layer.output.LayerNorm, student_layer.output.LayerNorm)


def _project_module(teacher_module, student_module, projection, teacher_hidden: int) -> None:
    """Embeddings, LayerNorms, pooler and task heads: each weight side of width T is projected
    (an output side by `write`, an input side by `read`); other parameters are copied."""
    if isinstance(teacher_module, nn.LayerNorm) and teacher_module.weight.shape == (
        teacher_hidden,
    ):
        projection.layer_norm(teacher_module, student_module)
        return
    if isinstance(teacher_module, nn.Embedding):
        student_module.weight.copy_(projection.read(teacher_module.weight))
        return
    if isinstance(teacher_module, nn.Linear):
        weight, bias = teacher_module.weight, teacher_module.bias
        if teacher_module.in_features == teacher_hidden:
            weight = projection.read(weight)
        if teacher_module.out_features == teacher_hidden:
            weight = projection.write(weight)
            bias = projection.write(bias) if bias is not None else None
        student_module.weight.copy_(weight)
        if bias is not None:
            student_module.bias.copy_(bias)
        return
    for name, parameter in student_module.named_parameters(recurse=False):
        teacher_parameter = getattr(teacher_module, name)
        if teacher_parameter.shape != parameter.shape:
            raise TypeError(
                f"init svd: don't know how to narrow {type(teacher_module).__name__}.{name}"
            )
        parameter.copy_(teacher_parameter)


@torch.no_grad()
def _svd_student(teacher, student, kept: list[int]) -> None:
    """Set the weights of the (fresh, narrower) `student` from the teacher's `kept` layers:
    attention and feed-forward blocks as above, every other module (embeddings, pooler, task or
    masked-LM head) through the hidden projection, its other dimensions (labels, vocabulary)
    unchanged. A decoder tied to the word embeddings gets the same projected table twice."""
    teacher_hidden = teacher.config.hidden_size
    projection = _HiddenProjection(_hidden_basis(teacher, student.config.hidden_size))
    teacher_encoder, name = _layer_list(teacher)
    student_encoder, _ = _layer_list(student)
    teacher_layers = getattr(teacher_encoder, name)
    student_layers = getattr(student_encoder, name)
    for teacher_index, student_layer in zip(kept, student_layers, strict=True):
        teacher_layer = teacher_layers[teacher_index]
        if not hasattr(teacher_layer, "intermediate"):
            raise TypeError(f"init svd supports BERT-family encoders, not {type(teacher_layer)}")
        _project_attention(teacher_layer.attention, student_layer.attention, projection)
        _project_feed_forward(teacher_layer, student_layer, projection)
    in_layers = {id(module) for module in student_layers.modules()}
    for module_name, student_module in student.named_modules():
        if id(student_module) not in in_layers:
            teacher_module = teacher.get_submodule(module_name)
            _project_module(teacher_module, student_module, projection, teacher_hidden)


def _parameter_count(module: nn.Module) -> int:
    """Parameters of `module`, int8 weights of dynamically quantised layers included (they
    are packed buffers, not parameters)."""
    packed = sum(
        layer.weight().numel() + (layer.bias().numel() if layer.bias() is not None else 0)
        for layer in module.modules()
        if isinstance(layer, torch.ao.nn.quantized.dynamic.Linear)
    )
    return sum(p.numel() for p in module.parameters()) + packed


def count_parameters(model) -> dict[str, int]:
    """Total parameters, and those outside the embedding block (what layer cuts reduce).

    An int8 model counts as many as its fp32 original; an ONNX one (compress.OnnxModel) is
    counted on the fp32 architecture it was exported from.
    """
    total = _parameter_count(model)
    embeddings = getattr(model.base_model, "embeddings", None)
    embedding = _parameter_count(embeddings) if embeddings is not None else 0
    return {"params_total": total, "params_non_embedding": total - embedding}
