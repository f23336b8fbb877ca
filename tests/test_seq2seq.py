"""Encoder-decoder models of the seq2seq family on a tiny BERT2BERT: warm start, shrinking,
target encoding, word-level KD targets with their tail mass, training, generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medistill.seq2seq.model import (
    collate_pairs,
    decode_batch,
    encode_pairs,
    encoder_frozen,
    freeze_whole_encoder,
    frequent_target_tokens,
    generate_texts,
    generation_latency,
    layer_counts,
    shrink,
    teacher_topk,
    warm_started,
    with_encoder_states,
)
from medistill.seq2seq.objective import Seq2SeqObjective
from medistill.seq2seq.training import (
    decoding_vocabulary,
    rouge_dev_score,
    route_examples,
    teacher_pairs,
)
from medistill.training.loop import train
from medistill.training.losses import topk_kl

PAIRS = [
    {
        "source": "patient admis pour une pneumopathie traitée par amoxicilline",
        "target": "pneumopathie",
    },
    {"source": "douleur thoracique, infarctus du myocarde, pose de stent", "target": "infarctus"},
]


@pytest.fixture(scope="module")
def bert2bert(tiny_bert):
    torch.manual_seed(0)
    return warm_started(tiny_bert)


def test_warm_start_and_shrink_keep_the_teachers_layers(bert2bert):
    teacher, tokenizer = bert2bert
    assert teacher.config.decoder.add_cross_attention and teacher.config.decoder.is_decoder
    assert teacher.config.decoder_start_token_id == tokenizer.cls_token_id
    assert teacher.generation_config.eos_token_id == tokenizer.sep_token_id
    student = shrink(teacher, encoder_layers=2, decoder_layers=1, size_name="E2D1")
    assert student.config.medistill_student["layers_kept"] == {"encoder": [0, 3], "decoder": [0]}
    assert len(student.encoder.encoder.layer) == 2 and len(student.decoder.bert.encoder.layer) == 1
    assert student.config.encoder.num_hidden_layers == 2
    assert student.config.decoder.num_hidden_layers == 1
    assert len(teacher.encoder.encoder.layer) == 4  # the teacher is left whole
    kept, original = student.encoder.encoder.layer[1], teacher.encoder.encoder.layer[3]
    for p, q in zip(kept.parameters(), original.parameters(), strict=True):
        assert torch.equal(p, q) and p is not q
    encoder_only = shrink(teacher, encoder_layers=None, decoder_layers=2)
    assert encoder_only.config.medistill_student["layers_kept"]["encoder"] == [0, 1, 2, 3]


def test_targets_end_with_the_end_token_and_pad_with_ignore(bert2bert):
    _, tokenizer = bert2bert
    pairs = PAIRS + [{"source": "pneumopathie", "target": "pneumopathie"}]
    examples = encode_pairs(tokenizer, pairs, max_source=32, max_target=8)
    for example in examples:
        assert example["labels"][-1] == tokenizer.sep_token_id
        assert example["labels"][0] != tokenizer.cls_token_id
        assert example["input_ids"][0] == tokenizer.cls_token_id
    batch = collate_pairs(examples, tokenizer.pad_token_id)
    shorter = min(range(2), key=lambda i: len(examples[i]["labels"]))
    assert (batch["labels"][shorter, len(examples[shorter]["labels"]) :] == -100).all()
    assert batch["attention_mask"].sum().item() == sum(len(e["input_ids"]) for e in examples)


def test_word_level_targets_keep_the_tail_and_match_the_teacher(bert2bert):
    teacher, tokenizer = bert2bert
    pairs = PAIRS + [{"source": "pneumopathie", "target": "pneumopathie"}]
    examples = encode_pairs(tokenizer, pairs, max_source=32, max_target=8)
    cached = teacher_topk(
        teacher, examples, tokenizer.pad_token_id, k=5, batch_size=2, device="cpu"
    )
    batch = collate_pairs(examples, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = teacher(**batch).logits
    for row, (example, targets) in enumerate(zip(examples, cached, strict=True)):
        n = len(example["labels"])
        assert targets["topk_ids"].shape == (n, 5)
        full = torch.logsumexp(logits[row, :n], dim=-1)
        kept = torch.logsumexp(
            torch.cat(
                [
                    torch.from_numpy(targets["topk_logits"]).float(),
                    torch.from_numpy(targets["tail_logsumexp"])[:, None],
                ],
                dim=1,
            ),
            dim=-1,
        )
        assert torch.allclose(kept, full, atol=5e-2)  # float16 top-k
    # The teacher against its own cached distribution: no divergence left to learn.
    with_targets = [e | t for e, t in zip(examples, cached, strict=True)]
    batch = Seq2SeqObjective.make_batch(with_targets, tokenizer.pad_token_id)
    rows = teacher(**collate_pairs(examples, tokenizer.pad_token_id)).logits[
        batch["labels"] != -100
    ]
    kl = topk_kl(rows, batch["topk_ids"], batch["topk_logits"], batch["tail_logsumexp"])
    assert kl.item() == pytest.approx(0.0, abs=1e-2)


def test_a_student_learns_its_targets_and_generates_them(bert2bert, tmp_path):
    teacher, tokenizer = bert2bert
    student = shrink(teacher, encoder_layers=2, decoder_layers=1)
    for module in student.modules():  # memorise two pairs: no dropout noise
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    pairs = PAIRS + [{"source": "pneumopathie", "target": "pneumopathie"}]
    examples = encode_pairs(tokenizer, pairs, max_source=32, max_target=8)
    recipe = {"steps": 80, "batch_size": 2, "learning_rate": 1e-2, "warmup_ratio": 0.0}
    recipe |= {"weight_decay": 0.0, "max_grad_norm": 1.0, "checkpoint_every": 1000}
    recipe |= {"eval_every": 0, "patience": 0}
    history = train(
        student,
        examples,
        recipe,
        objective=Seq2SeqObjective(),
        pad_id=tokenizer.pad_token_id,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "s.pt",
        fingerprint="s2s",
        desc="test",
    )
    assert history[-1]["loss"] < history[0]["loss"] / 20
    outputs = generate_texts(
        student,
        tokenizer,
        [p["source"] for p in PAIRS],
        max_source=32,
        max_new_tokens=8,
        num_beams=1,
        batch_size=2,
        device="cpu",
    )
    assert outputs == [p["target"] for p in PAIRS]
    generation = {"max_source": 32, "max_new_tokens": 8, "num_beams": 2, "batch_size": 2}
    assert rouge_dev_score(generation, tokenizer, PAIRS, "cpu")(student) == pytest.approx(1.0)
    labelled = teacher_pairs(
        student, tokenizer, [p | {"id": str(i)} for i, p in enumerate(PAIRS)], generation, "cpu"
    )
    assert [p["target"] for p in labelled] == [p["target"] for p in PAIRS]
    timing = generation_latency(
        student, tokenizer, [PAIRS[0]["source"]] * 3, max_source=32, max_new_tokens=8, num_beams=1
    )
    assert timing["latency_ms_output"] > 0 and timing["tokens_per_s"] > 0
    assert np.isfinite(list(timing.values())).all()


def test_routes_build_their_examples_and_objectives(bert2bert):
    teacher, tokenizer = bert2bert
    generation = {"max_source": 32, "max_new_tokens": 8, "num_beams": 1, "batch_size": 2}
    transfer = [{"id": "t", "source": "fièvre et toux depuis trois jours", "target": "fièvre"}]
    shrink_examples, objective = route_examples("shrink", tokenizer, PAIRS, generation, transfer)
    assert len(shrink_examples) == 2 and objective.weights["kl_weight"] == 0
    sequence_examples, _ = route_examples("sequence", tokenizer, PAIRS, generation, transfer)
    assert len(sequence_examples) == 3  # the gold pairs and the teacher-labelled transfer
    targets = encode_pairs(tokenizer, [*PAIRS, *transfer], 32, 8)
    cached = teacher_topk(teacher, targets, tokenizer.pad_token_id, k=4, batch_size=2, device="cpu")
    word_examples, objective = route_examples(
        "word", tokenizer, PAIRS, generation, transfer, cached
    )
    assert objective.weights["kl_weight"] > 0 and all("topk_ids" in e for e in word_examples)
    with pytest.raises(ValueError, match="2 cached teacher distributions for 3 targets"):
        route_examples("word", tokenizer, PAIRS, generation, transfer, cached[:2])
    with pytest.raises(ValueError, match="unknown distillation route 'beam'"):
        route_examples("beam", tokenizer, PAIRS, generation)


def test_an_int8_copy_generates_and_counts_as_its_original(bert2bert, tmp_path):
    from medistill.models.compress import save_int8
    from medistill.seq2seq.distill import fp32_parameters, load_seq2seq

    teacher, tokenizer = bert2bert
    student = shrink(teacher, encoder_layers=2, decoder_layers=1)
    student.save_pretrained(tmp_path / "fp32")
    tokenizer.save_pretrained(tmp_path / "fp32")
    save_int8(student, tokenizer, tmp_path / "int8")
    quantized, _ = load_seq2seq(tmp_path / "int8")
    assert any(
        type(m).__name__ == "Linear" and "quantized" in type(m).__module__
        for m in quantized.modules()
    )
    sources = [p["source"] for p in PAIRS]
    settings = {"max_source": 32, "max_new_tokens": 4, "num_beams": 1, "batch_size": 2}
    outputs = generate_texts(quantized, tokenizer, sources, **settings, device="cpu")
    assert len(outputs) == 2
    assert fp32_parameters(tmp_path / "int8") == fp32_parameters(tmp_path / "fp32")


def test_a_seed_run_is_reused_only_for_the_same_settings_and_inputs(tmp_path):
    from medistill.seq2seq.distill import job_fingerprint

    teacher, pairs = tmp_path / "teacher", tmp_path / "train.jsonl"
    teacher.mkdir()
    (teacher / "config.json").write_text("{}")
    (teacher / "model.safetensors").write_bytes(b"weights")
    pairs.write_text('{"source": "a", "target": "b"}\n')
    settings = {"seq2seq": {"generation": {"max_new_tokens": 8}}}
    before = job_fingerprint(settings, [teacher, pairs])
    assert job_fingerprint(settings, [teacher, pairs]) == before
    edited = {"seq2seq": {"generation": {"max_new_tokens": 16}}}
    assert job_fingerprint(edited, [teacher, pairs]) != before
    (teacher / "model.safetensors").write_bytes(b"retrained")  # a retrained teacher
    assert job_fingerprint(settings, [teacher, pairs]) != before


def test_restricted_decoding_writes_only_source_and_frequent_target_tokens(bert2bert):
    teacher, tokenizer = bert2bert
    targets = ["motif : douleur", "motif : fievre", "sortie : domicile"]
    vocabulary = frequent_target_tokens(tokenizer, targets, min_share=0.5)
    words = {tokenizer.decode([token]) for token in vocabulary - set(tokenizer.all_special_ids)}
    assert words == {"motif", ":"}  # "sortie", "douleur"... are in fewer than half
    sources = [p["source"] for p in PAIRS]
    batch = tokenizer(sources, padding=True, return_tensors="pt")
    generated = decode_batch(
        teacher,
        batch["input_ids"],
        batch["attention_mask"],
        max_new_tokens=12,
        num_beams=2,
        vocabulary=vocabulary,
    )
    for written, ids, mask in zip(
        generated, batch["input_ids"], batch["attention_mask"], strict=True
    ):
        assert set(written.tolist()) <= set(ids[mask.bool()].tolist()) | vocabulary
    settings = {"max_source": 32, "max_new_tokens": 12, "num_beams": 2, "batch_size": 2}
    free = generate_texts(teacher, tokenizer, sources, **settings, device="cpu")
    restricted = generate_texts(
        teacher, tokenizer, sources, **settings, device="cpu", vocabulary=vocabulary
    )
    assert free != restricted  # the untrained teacher's free outputs leave the sources
    assert restricted == tokenizer.batch_decode(generated, skip_special_tokens=True)
    timing = generation_latency(
        teacher,
        tokenizer,
        sources,
        max_source=32,
        max_new_tokens=4,
        num_beams=1,
        vocabulary=vocabulary,
    )
    assert timing["latency_ms_output"] > 0


def test_a_generation_block_restricts_decoding_only_when_it_asks(bert2bert):
    _, tokenizer = bert2bert
    pairs = [{"source": "s", "target": t} for t in ("motif : douleur", "motif : fievre", "sortie")]
    generation = {"max_source": 32, "max_new_tokens": 12, "num_beams": 2, "batch_size": 2}
    assert decoding_vocabulary(tokenizer, generation, pairs) is None
    restricted = generation | {"restrict_vocabulary": 0.5}
    assert decoding_vocabulary(tokenizer, restricted, pairs) == frequent_target_tokens(
        tokenizer, [p["target"] for p in pairs], 0.5
    )
    with pytest.raises(ValueError, match="restrict_vocabulary: no train pairs"):
        decoding_vocabulary(tokenizer, restricted, [])


def test_a_frozen_encoders_states_computed_once_give_the_same_loss(bert2bert):
    teacher, tokenizer = bert2bert
    student = shrink(teacher, encoder_layers=None, decoder_layers=1)
    assert (
        layer_counts(student)
        == {"encoder": 4, "decoder": 1}
        == layer_counts(teacher) | {"decoder": 1}
    )
    assert not encoder_frozen(student)
    cut = shrink(teacher, encoder_layers=2, decoder_layers=1)
    assert not freeze_whole_encoder(cut, teacher) and not encoder_frozen(cut)
    assert freeze_whole_encoder(student, teacher) and encoder_frozen(student)
    pairs = PAIRS + [{"source": "pneumopathie", "target": "pneumopathie"}]
    examples = encode_pairs(tokenizer, pairs, max_source=32, max_target=8)
    cached = with_encoder_states(student, examples, tokenizer.pad_token_id, 1, "cpu")
    lengths = [len(e["input_ids"]) for e in examples]
    assert len(set(lengths)) > 1  # a short source is padded in the batch
    assert [c["encoder_states"].shape for c in cached] == [(n, 32) for n in lengths]
    objective, pad = Seq2SeqObjective(), tokenizer.pad_token_id
    batch, from_states = objective.make_batch(examples, pad), objective.make_batch(cached, pad)
    assert from_states["encoder_states"].shape == (3, max(lengths), 32)
    assert "encoder_states" not in batch
    student.eval()  # no dropout: the two losses are comparable
    with torch.no_grad():
        direct, once = objective(student, batch), objective(student, from_states)
    assert once.item() == pytest.approx(direct.item(), rel=1e-3)  # float16 states
