"""Cache, distillation loss, the training loop (resume included) and evaluation, on a tiny BERT."""

import math

import numpy as np
import pytest
import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from medistill.core.hashing import config_hash
from medistill.core.io import write_json, write_jsonl
from medistill.data.spans import iob2_labels
from medistill.ner.cache import build_cache, load_cache, word_logits
from medistill.ner.distill import epoch_budget, mix_examples, pseudo_labelled
from medistill.ner.evaluate import cpu_latency
from medistill.ner.finetune import finetune_teacher
from medistill.ner.objectives import TaskObjective
from medistill.ner.scoring import ner_scores, predict_tags
from medistill.training.loop import (
    batch_indices,
    build_examples,
    ner_dev_score,
    stopping_free,
    train,
)
from medistill.training.losses import distillation_loss

LABELS = iob2_labels(("DISO", "CHEM"))
SENTENCES = [
    {"id": f"s{i}", "words": words, "tags": tags}
    for i, (words, tags) in enumerate(
        [
            (["Insuffisance", "cardiaque", "sévère", "."], ["B-DISO", "I-DISO", "O", "O"]),
            (["Traité", "par", "furosémide", "."], ["O", "O", "B-CHEM", "O"]),
            (["Pas", "de", "diabète", "connu", "."], ["O", "O", "B-DISO", "O", "O"]),
            (["Amoxicilline", "arrêtée", "."], ["B-CHEM", "O", "O"]),
        ]
        * 5
    )
]
RECIPE = {
    "steps": 6,
    "batch_size": 4,
    "learning_rate": 1e-3,
    "warmup_ratio": 0.0,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "checkpoint_every": 3,
}
CE_ONLY = {"temperature": 1.0, "kl_weight": 0.0, "ce_weight": 1.0}


@pytest.fixture()
def model_and_tokenizer(tiny_bert):
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert, num_labels=len(LABELS), id2label=dict(enumerate(LABELS))
    )
    return model, AutoTokenizer.from_pretrained(tiny_bert)


def test_cache_round_trip_and_resume(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    args = {
        "teacher": "tiny",
        "teacher_sha": "abc",
        "shard_size": 6,
        "max_length": 64,
        "batch_size": 4,
        "device": "cpu",
    }
    manifest = build_cache(model, tokenizer, SENTENCES, tmp_path, **args)
    assert manifest["n_sentences"] == 20 and len(manifest["shards"]) == 4
    assert manifest["shape"] == [sum(len(s["words"]) for s in SENTENCES), len(LABELS)]
    _, cached = load_cache(tmp_path / "manifest.json", SENTENCES)
    direct = word_logits(model, tokenizer, SENTENCES, 64, 4, "cpu")
    for a, b in zip(cached, direct, strict=True):
        assert a.shape == b.shape and np.allclose(a, b, atol=1e-2)  # float16 storage

    # A killed job: the manifest and one shard are missing; only that shard is recomputed.
    shards = sorted(tmp_path.glob("shard-*.safetensors"))
    kept = {p: p.stat().st_mtime_ns for p in shards[:-1]}
    (tmp_path / "manifest.json").unlink()
    shards[-1].unlink()
    build_cache(model, tokenizer, SENTENCES, tmp_path, **args)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert shards[-1].exists()

    # Another teacher invalidates every shard.
    build_cache(model, tokenizer, SENTENCES, tmp_path, **(args | {"teacher_sha": "other"}))
    assert not any(p.exists() for p in shards)

    with pytest.raises(ValueError, match="other sentences"):
        load_cache(tmp_path / "manifest.json", SENTENCES[:-1])


def test_distillation_loss():
    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    gold = torch.tensor([0, 1])
    same = distillation_loss(teacher.clone(), teacher, gold, 2.0, 1.0, 0.0)
    assert same.item() == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros_like(teacher)
    kl_t1 = distillation_loss(student, teacher, gold, 1.0, 1.0, 0.0)
    assert kl_t1.item() > 0
    ce = distillation_loss(student, None, gold, 1.0, 1.0, 1.0)
    assert ce.item() == pytest.approx(np.log(3), rel=1e-5)
    no_gold = distillation_loss(student, None, torch.tensor([-100, -100]), 1.0, 0.0, 1.0)
    assert no_gold.item() == 0.0


def test_batches_cover_each_epoch_once_grouped_by_length():
    lengths = [3 + (i * 7) % 40 for i in range(200)]
    batches = [batch_indices(lengths, 4, step, seed=1) for step in range(50)]
    assert sorted(i for batch in batches for i in batch) == list(range(200))
    assert batch_indices(lengths, 4, 7, seed=1) == batch_indices(lengths, 4, 7, seed=1)
    assert batch_indices(lengths, 4, 57, seed=1) != batch_indices(lengths, 4, 7, seed=1)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(0)).tolist()
    random_padded = sum(
        4 * max(lengths[i] for i in shuffled[start : start + 4]) for start in range(0, 200, 4)
    )
    assert padded < random_padded


def _train(model, tokenizer, checkpoint, recipe=RECIPE, on_log=None):
    examples = build_examples(tokenizer, SENTENCES, LABELS, 64)
    return train(
        model,
        examples,
        recipe,
        pad_id=tokenizer.pad_token_id,
        seed=0,
        device="cpu",
        checkpoint=checkpoint,
        fingerprint="test",
        objective=TaskObjective(**CE_ONLY),
        desc="test",
        log_every=1,
        on_log=on_log,
    )


def test_training_learns(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    recipe = RECIPE | {"steps": 40, "learning_rate": 5e-3, "checkpoint_every": 100}
    losses = [point["loss"] for point in _train(model, tokenizer, tmp_path / "c.pt", recipe)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_killed_training_resumes_to_the_same_weights(tiny_bert, tmp_path):
    def fresh():
        torch.manual_seed(0)
        return AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=len(LABELS))

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    straight = fresh()
    _train(straight, tokenizer, tmp_path / "a.pt")

    def kill(step, loss):
        if step == 4:
            raise KeyboardInterrupt

    interrupted = fresh()
    with pytest.raises(KeyboardInterrupt):
        _train(interrupted, tokenizer, tmp_path / "b.pt", on_log=kill)
    assert torch.load(tmp_path / "b.pt", weights_only=False)["step"] == 3
    resumed = fresh()
    history = _train(resumed, tokenizer, tmp_path / "b.pt")
    assert history[0]["step"] == 0 and history[-1]["step"] == 5
    for p, q in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_ner_scores_strict_iob2():
    gold = [["B-DISO", "I-DISO", "O", "B-CHEM"]]
    assert ner_scores(gold, gold)["f1"] == 1.0
    partial = ner_scores(gold, [["B-DISO", "O", "O", "B-CHEM"]])
    assert partial["f1"] == pytest.approx(0.5)
    assert partial["per_type"]["CHEM"]["f1-score"] == 1.0
    # strict mode: an entity opened by I- is not an entity
    assert ner_scores(gold, [["I-DISO", "I-DISO", "O", "O"]])["f1"] == 0.0


def test_predict_and_latency(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    predicted = predict_tags(model, tokenizer, SENTENCES, 64, 8, "cpu")
    assert [len(p) for p in predicted] == [len(s["words"]) for s in SENTENCES]
    assert all(tag in LABELS for p in predicted for tag in p)
    latency = cpu_latency(model, tokenizer, SENTENCES, runs=5, threads=1)
    assert 0 < latency["latency_ms_b1"] <= latency["latency_ms_b1_p95"]
    assert latency["latency_threads"] == 1


def test_a_corpus_gives_its_gold_tags_only_when_asked_and_only_of_the_task():
    from medistill.ner.distill import corpus_gold

    other = [{"id": "x", "words": ["HTA", "."], "tags": ["B-CLINENTITY", "O"]}]
    # by default the teacher's signal alone: the twin never sees the corpus's gold
    dropped = corpus_gold(SENTENCES, LABELS, "c", keep=False)
    assert all("tags" not in s for s in dropped)
    assert [s["words"] for s in dropped] == [s["words"] for s in SENTENCES]
    assert corpus_gold(SENTENCES, LABELS, "c", keep=True) is SENTENCES
    # another task's tags never
    stripped = corpus_gold(other + SENTENCES, LABELS, "c", keep=True)
    assert all("tags" not in s for s in stripped)
    assert [s["words"] for s in stripped] == [s["words"] for s in other + SENTENCES]


def test_mixed_teachers_average_their_distributions():
    from medistill.ner.distill import mix_teacher_logits

    rng = np.random.default_rng(0)
    a = [rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)]
    b = [rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)]
    mixed = mix_teacher_logits([a, b], [3.0, 1.0], temperature=2.0)
    for x, y, m in zip(a, b, mixed, strict=True):
        expected = 0.75 * torch.softmax(torch.from_numpy(x) / 2, -1) + 0.25 * torch.softmax(
            torch.from_numpy(y) / 2, -1
        )
        assert torch.allclose(torch.softmax(torch.from_numpy(m) / 2, -1), expected, atol=1e-6)


def test_a_mix_reads_each_members_cache_and_rejects_other_labels(tiny_bert, tmp_path):
    from medistill.ner.distill import _teacher_logits

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    args = {"shard_size": 8, "max_length": 64, "batch_size": 4, "device": "cpu"}
    manifests = {}
    for seed, name, labels in ((0, "a", LABELS), (1, "b", LABELS), (2, "c", LABELS[:3])):
        torch.manual_seed(seed)
        model = AutoModelForTokenClassification.from_pretrained(
            tiny_bert, num_labels=len(labels), id2label=dict(enumerate(labels))
        )
        build_cache(
            model, tokenizer, SENTENCES, tmp_path / name, teacher=name, teacher_sha=name, **args
        )
        manifests[name] = tmp_path / name / "manifest.json"
    config = {
        "teachers": {
            "ab": {"mix": {"a": 1.0, "b": 1.0}, "init": "a"},
            "ac": {"mix": {"a": 1.0, "c": 1.0}, "init": "a"},
        },
        "distill": {"temperature": 2.0},
    }
    manifest, mixed = _teacher_logits(
        config, "ab", [manifests["a"], manifests["b"]], SENTENCES, tokenizer
    )
    assert manifest["mix"] == {"a": 1.0, "b": 1.0} and len(mixed) == len(SENTENCES)
    _, a = load_cache(manifests["a"], SENTENCES)
    _, b = load_cache(manifests["b"], SENTENCES)
    expected = (
        torch.softmax(torch.from_numpy(a[0]) / 2, -1)
        + torch.softmax(torch.from_numpy(b[0]) / 2, -1)
    ) / 2
    assert torch.allclose(torch.softmax(torch.from_numpy(mixed[0]) / 2, -1), expected, atol=1e-5)
    with pytest.raises(ValueError, match="different label sets"):
        _teacher_logits(config, "ac", [manifests["a"], manifests["c"]], SENTENCES, tokenizer)


def test_dev_selection_keeps_the_best_weights_and_stops_early(model_and_tokenizer, tmp_path):
    model, tokenizer = model_and_tokenizer
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    weights_seen = []

    def dev_score(scored):
        weights_seen.append({k: v.clone() for k, v in scored.state_dict().items()})
        return next(scores)

    history = train(
        model,
        build_examples(tokenizer, SENTENCES, LABELS, 64),
        RECIPE | {"steps": 6, "eval_every": 1, "patience": 2},
        pad_id=tokenizer.pad_token_id,
        seed=0,
        device="cpu",
        checkpoint=tmp_path / "c.pt",
        fingerprint="test",
        objective=TaskObjective(**CE_ONLY),
        desc="test",
        dev_score=dev_score,
    )
    dev = [h["dev_f1"] for h in history if "dev_f1" in h]
    assert dev == [0.1, 0.5, 0.3, 0.2]  # two evaluations without improvement: stop
    final = model.state_dict()
    assert all(torch.equal(final[k], weights_seen[1][k]) for k in final)  # the 0.5 weights
    assert not all(torch.equal(final[k], weights_seen[3][k]) for k in final)


def _scripted_run(tiny_bert, checkpoint, scores, **recipe_edit):
    """A run of the tiny BERT, checkpointed and dev-scored at every step with `scores` in turn:
    its model, its dev scores, and the weights each dev score saw."""
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=len(LABELS))
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    scores, scored_weights = iter(scores), []

    def dev_score(scored):
        scored_weights.append({k: v.clone() for k, v in scored.state_dict().items()})
        return next(scores)

    recipe = RECIPE | {"checkpoint_every": 1, "eval_every": 1, "patience": 0} | recipe_edit
    history = train(
        model,
        build_examples(tokenizer, SENTENCES, LABELS, 64),
        recipe,
        pad_id=tokenizer.pad_token_id,
        seed=0,
        device="cpu",
        checkpoint=checkpoint,
        fingerprint=config_hash(stopping_free(recipe)),
        objective=TaskObjective(**CE_ONLY),
        desc="test",
        dev_score=dev_score,
    )
    return model, [h["dev_f1"] for h in history if "dev_f1" in h], scored_weights


def test_a_patience_edit_resumes_a_stopped_run_only_where_it_would_not_have_stopped(
    tiny_bert, tmp_path
):
    scripted = [0.1, 0.5, 0.3, 0.2, 0.9, 0.8]

    def run(patience, checkpoint, first_step=0):
        model, dev, _ = _scripted_run(
            tiny_bert, checkpoint, scripted[first_step:], patience=patience
        )
        return model, dev

    straight, dev = run(0, tmp_path / "straight.pt")
    assert dev == scripted
    _, dev = run(2, tmp_path / "raised.pt")
    assert dev == [0.1, 0.5, 0.3, 0.2]  # stopped; its last checkpoint is at step 3
    raised, dev = run(0, tmp_path / "raised.pt", first_step=3)  # resumed: steps 3-5 only
    assert dev == scripted
    for p, q in zip(straight.parameters(), raised.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)  # the step-4 weights, as without the stop
    # the other way: the straight run's checkpoint (step 5) lies past where patience 2 stops,
    # so it is trained again from step 0
    _, dev = run(2, tmp_path / "straight.pt")
    assert dev == [0.1, 0.5, 0.3, 0.2]


def test_keep_last_ends_at_the_final_step_and_a_keep_edit_resumes_where_it_can(tiny_bert, tmp_path):
    scripted = [0.1, 0.5, 0.3, 0.2, 0.9, 0.8]

    def run(keep, checkpoint, first_step=0):
        model, dev, scored = _scripted_run(tiny_bert, checkpoint, scripted[first_step:], keep=keep)
        assert dev == scripted
        return model.state_dict(), scored

    def same(a, b):
        return all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

    last, scored = run("last", tmp_path / "last.pt")
    assert same(last, scored[5]) and not same(last, scored[4])  # not the best (0.9) step
    best, scored = run("best", tmp_path / "best.pt")
    assert same(best, scored[4])
    # best -> last: the best run's checkpoint (step 5) is resumed, only its final step trained
    resumed, scored = run("last", tmp_path / "best.pt", first_step=5)
    assert len(scored) == 1 and same(resumed, last)
    # last -> best: the last run's checkpoint holds no best weights, so it is trained again
    _, scored = run("best", tmp_path / "last.pt")
    assert len(scored) == 6


def test_seeded_runs_keep_the_best_dev_run_and_resume(tiny_bert, tmp_path):
    from medistill.ner.evaluate import over_seeds
    from medistill.training.loop import train_seeds

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    config = {
        "seed": 3,
        "seeds": 3,
        "device": "cpu",
        "max_length": 64,
        "evaluate": {"batch_size": 8},
    }

    def new_model():
        return AutoModelForTokenClassification.from_pretrained(
            tiny_bert, num_labels=len(LABELS), id2label=dict(enumerate(LABELS))
        )

    args = {
        "objective": TaskObjective(**CE_ONLY),
        "tokenizer": tokenizer,
        "dev_score": ner_dev_score(config, tokenizer, SENTENCES[:4]),
        "checkpoint": tmp_path / "ckpt" / "run.pt",
        "fingerprint": "test",
        "desc": "test",
        "out_dir": tmp_path / "model",
        "seeds_dir": tmp_path / "seeds",
    }
    recipe = RECIPE | {"steps": 8, "learning_rate": 5e-3, "eval_every": 4, "patience": 0}
    examples = build_examples(tokenizer, SENTENCES, LABELS, 64)
    runs = train_seeds(config, new_model, examples, recipe, **args)
    assert [r["seed"] for r in runs] == [3, 4, 5]
    best = max(runs, key=lambda r: r["dev_f1"])
    kept = AutoModelForTokenClassification.from_pretrained(tmp_path / "model")
    assert kept.config.medistill_run["seed"] == best["seed"]
    others = sorted(p.name for p in (tmp_path / "seeds").iterdir())
    assert others == sorted(f"seed-{r['seed']}" for r in runs if r is not best)
    # finished runs are not trained again: no example at all would fail a training step
    assert train_seeds(config, new_model, [], recipe, **args) == runs

    summary = over_seeds([{"f1": 0.5, "recall": 0.4}, {"f1": 0.7, "recall": 0.6}], [3, 4])
    assert summary["f1"] == pytest.approx(0.6) and summary["recall"] == pytest.approx(0.5)
    assert summary["f1_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summary["seeds"] == [3, 4] and summary["f1_per_seed"] == [0.5, 0.7]


def test_mixed_examples_hold_the_gold_ratio():
    transfer, gold = [{"t": i} for i in range(90)], [{"g": i} for i in range(10)]
    mixed = mix_examples(transfer, gold, 0.25)
    assert sum("g" in e for e in mixed) / len(mixed) == pytest.approx(0.25)
    assert mixed[:90] == transfer  # the transfer corpus once, the train split repeated
    assert mix_examples(transfer, gold, 1.0) == gold
    assert len(mix_examples(transfer, gold, 0.001)) == 100  # the train split at least once


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_epoch_budgets_count_the_mixed_data(ratio):
    """`epochs` sizes steps from the data mix_examples builds: the same count, at every ratio."""
    transfer, gold = [{"t": i} for i in range(900)], [{"g": i} for i in range(70)]
    recipe = {"steps": 5, "epochs": 2.0, "batch_size": 16, "grad_accumulation": 2}
    recipe |= {"gold_ratio": ratio}
    mixed = mix_examples(transfer, gold, ratio) if ratio > 0 else transfer
    budget = epoch_budget(recipe, len(transfer), len(gold))
    assert budget["steps"] == math.ceil(2.0 * len(mixed) / 32)
    assert (budget["steps"] - 1) * 32 < 2.0 * len(mixed) <= budget["steps"] * 32
    # a run on the train split alone (no transfer corpus): epochs over the split
    assert epoch_budget(recipe, 0, len(gold))["steps"] == math.ceil(2.0 * 70 / 32)
    assert epoch_budget(recipe | {"epochs": None}, 900, 70)["steps"] == 5


def test_pseudo_labels_fill_sentences_without_gold():
    labels = ["O", "B-DISO", "I-DISO"]
    sentences = [{"id": "a", "words": ["x", "y", "z"]}, {"id": "b", "words": ["w"], "tags": ["O"]}]
    logits = [
        np.array([[0.0, 0, 5], [0, 0, 5], [5, 0, 0]]),  # I I O: a stray I- starts a mention
        np.array([[0.0, 5, 0]]),
    ]
    tagged = pseudo_labelled(sentences, logits, labels)
    assert tagged[0]["tags"] == ["B-DISO", "I-DISO", "O"]
    assert tagged[1]["tags"] == ["O"]  # gold is kept


def test_length_buckets_keep_each_sentence_its_own_prediction(model_and_tokenizer):
    # Sentences of mixed lengths: batched by length, each result still lands at its index.
    model, tokenizer = model_and_tokenizer
    mixed = [SENTENCES[i] for i in (2, 3, 0, 1, 2)] + [
        {"id": "long", "words": SENTENCES[0]["words"] * 4, "tags": SENTENCES[0]["tags"] * 4}
    ]
    one_by_one = [predict_tags(model, tokenizer, [s], 64, 1, "cpu")[0] for s in mixed]
    assert predict_tags(model, tokenizer, mixed, 64, 4, "cpu") == one_by_one


def test_a_teacher_runs_its_own_number_of_seeds(tiny_bert, tmp_path):
    task_dir = tmp_path / "task"
    write_jsonl(SENTENCES, task_dir / "train.jsonl")
    write_jsonl(SENTENCES[:4], task_dir / "dev.jsonl")
    write_json(LABELS, task_dir / "labels.json")
    recipe = RECIPE | {"steps": 2, "eval_every": 2, "patience": 0}
    spec = {"source": f"local:{tiny_bert}", "licence": "MIT", "finetune": recipe, "seeds": 1}
    config = {
        "seed": 3,
        "seeds": 3,  # the students' count; the teacher's own `seeds` wins
        "device": "cpu",
        "max_length": 64,
        "trust_remote_code": False,
        "evaluate": {"batch_size": 8},
        "energy": {"enabled": False},
        "teachers": {"t": spec},
    }
    logged = []
    runs = finetune_teacher(
        config,
        teacher="t",
        task="ner",
        base_dir=tiny_bert,
        task_dir=task_dir,
        out_dir=tmp_path / "model",
        seeds_dir=tmp_path / "seeds",
        checkpoint=tmp_path / "ckpt" / "t.pt",
        log_run=lambda name, **record: logged.append((name, record["params"]["seeds"])),
    )
    assert [r["seed"] for r in runs] == [3]
    assert not list((tmp_path / "seeds").iterdir())
    assert logged == [("finetune/t/ner", [3])]
