# Config validation (before any job) and the input functions shared by the rule files.
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from medistill.config import (
    TASK_FILE_PATHS,
    TRAINED_TAGGERS,
    generative_teachers,
    validate_config,
)
from medistill.errors import ConfigError
from medistill.tasks import BASELINE_CORPUS, ROBUSTNESS_SETS

try:
    config.update(
        validate_config(
            config, where=", ".join(map(str, workflow.configfiles)) or "config"
        )
    )
except ConfigError as error:
    raise WorkflowError(str(error)) from None

TASK = config["sweep"]["task"]
SWEEP = config["sweep"]


wildcard_constraints:
    teacher="[^/]+",
    corpus="[^/]+",
    size="[^/]+",
    task="[^/]+",


# Sizes trained by distill_student and sizes compressed from another size, as wildcard
# patterns that keep the two rules apart ("(?!)" matches nothing when a list is empty).
def _names_pattern(names):
    return "|".join(map(re.escape, names)) or "(?!)"


TRAINED_SIZES = _names_pattern(n for n, s in config["sizes"].items() if "layers" in s)
COMPRESSED_SIZES = _names_pattern(
    n for n, s in config["sizes"].items() if "compress" in s
)
# The runtimes of the swept compressed sizes (their `compress` kinds): the teacher is
# compressed and timed in each too, for speedups against the teacher in the same runtime.
RUNTIMES = sorted(
    {
        config["sizes"][n]["compress"]
        for n in SWEEP["sizes"]
        if "compress" in config["sizes"][n]
    }
)


def size_runtime(size):
    """What runs a size: its `compress` kind (int8, onnx, ...) or torch in float."""
    return config["sizes"][size].get("compress", "torch")


# Teachers whose caches hold an encoder's logits, and generative teachers whose caches hold a
# generative tagger's silver tags (`labels_from`): two caching rules, one path pattern.
GENERATIVE_TEACHERS = _names_pattern(
    n for n, t in config["teachers"].items() if "labels_from" in t
)
ENCODER_TEACHERS = _names_pattern(
    n for n, t in config["teachers"].items() if "labels_from" not in t
)


def fine_tuned(teacher):
    spec = config["teachers"][teacher]
    return f"results/teachers/{teacher}/{spec['task']}/model"


def init_teacher(teacher):
    """The teacher whose weights and tokenizer a student starts from (a mix's `init`)."""
    return config["teachers"][teacher].get("init", teacher)


def teacher_model(wildcards):
    return fine_tuned(init_teacher(wildcards.teacher))


def reference_teacher(teacher):
    """The row a student's retention and speedup are measured against: the generative tagger
    of a generative teacher, else the teacher its weights come from."""
    return config["teachers"][teacher].get("labels_from") or init_teacher(teacher)


def averaged_seed_runs(wildcards):
    """A teacher whose caches average its seed runs also reads its other runs."""
    if not config["teachers"][wildcards.teacher]["average_seeds"]:
        return {}
    return {"seeds": str(Path(fine_tuned(wildcards.teacher)).with_name("seeds"))}


def distill_inputs(wildcards):
    """What a size's mode reads: the corpus and its task logits, general cache, or both; a
    baseline (corpus `gold`) reads the task's gold labels alone (the pretrained teacher too,
    which a general-mode student is cut from), and the swept corpus for its gold tags with
    `distill.corpus_gold`."""
    size = config["sizes"][wildcards.size]
    mode = size["mode"]
    members = config["teachers"][wildcards.teacher].get("mix", [wildcards.teacher])
    init = init_teacher(wildcards.teacher)
    pretrained_cut = mode != "task" or size["cut_from"] == "pretrained"
    base = {"base": f"results/teachers/{init}/base"} if pretrained_cut else {}
    if gold_only(wildcards) and config["distill"]["epochs"] is not None:
        # steps sized from epochs: a run on the train split gets the largest corpus's budget
        base["budget_corpora"] = [
            f"results/corpus/{corpus}/augmented.jsonl" for corpus in SWEEP["corpora"]
        ]
    if wildcards.corpus == BASELINE_CORPUS:
        if config["distill"][
            "corpus_gold"
        ]:  # the twin learns the corpus's gold tags too
            base["docs"] = f"results/corpus/{SWEEP['corpora'][0]}/augmented.jsonl"
        return base
    inputs = {"docs": f"results/corpus/{wildcards.corpus}/augmented.jsonl"}
    if mode != "general":
        inputs["cache"] = [
            f"results/cache/{m}/{wildcards.corpus}/task/manifest.json" for m in members
        ]
        # the task's own train split, with the teacher's logits on it (distill.gold_ratio)
        gold_mixed = config["distill"]["gold_ratio"] > 0
        if gold_mixed:
            inputs["train_cache"] = [
                f"results/cache/{m}/task-train/{TASK}/manifest.json" for m in members
            ]
        # hidden states of the teacher the student is cut from (distill.intermediate)
        if intermediate_transfer():
            inputs["hidden_cache"] = (
                f"results/cache/{init}/task-hidden/{wildcards.corpus}/manifest.json"
            )
            if gold_mixed:
                inputs["train_hidden_cache"] = (
                    f"results/cache/{init}/task-hidden-train/{TASK}/manifest.json"
                )
    if mode != "task":  # the general stage learns from the init teacher alone
        inputs["general_cache"] = (
            f"results/cache/{init}/{wildcards.corpus}/general/manifest.json"
        )
    return inputs | base


def compressed_from(wildcards):
    source = config["sizes"][wildcards.size]["from"]
    folder = f"results/students/{wildcards.teacher}/{wildcards.corpus}/{source}"
    return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}


def task_test_files(wildcards):
    """The clean test set and its robustness copies."""
    folder = f"results/tasks/{wildcards.task}"
    return {"clean": f"{folder}/test.jsonl"} | {
        name: f"{folder}/test_{name}.jsonl" for name in ROBUSTNESS_SETS
    }


def baseline_counts(wildcards):
    """A distilled student is compared with its baseline (the same size trained on gold alone)
    sentence by sentence on the test set: it reads the baseline's per-sentence counts.
    """
    if not SWEEP["baselines"] or wildcards.corpus == BASELINE_CORPUS:
        return {}
    baseline = init_teacher(wildcards.teacher)
    folder = f"results/eval/{baseline}/{BASELINE_CORPUS}/{wildcards.size}"
    return {"baseline_counts": f"{folder}/{wildcards.task}.counts.json"}


def student_grid():
    """(teacher, corpus) of every student: each swept teacher's on each transfer corpus; the
    baselines (corpus `gold`) once per encoder the students start from, since a mix's or a
    generative teacher's baseline is its `init` teacher's (same cut, same gold tags)."""
    grid = [(t, c) for t in SWEEP["teachers"] for c in SWEEP["corpora"]]
    if SWEEP["baselines"]:
        inits = dict.fromkeys(init_teacher(t) for t in SWEEP["teachers"])
        grid += [(t, BASELINE_CORPUS) for t in inits]
    return grid


def student_files(pattern):
    return [
        pattern.format(teacher=teacher, corpus=corpus, size=size, task=TASK)
        for teacher, corpus in student_grid()
        for size in SWEEP["sizes"]
    ]


def evaluation_files(wildcards):
    references = dict.fromkeys(init_teacher(t) for t in SWEEP["teachers"])
    teachers = [f"results/eval/{t}/teacher/{TASK}.json" for t in references]
    teachers += expand(
        "results/eval/{teacher}/teacher-{runtime}/{task}.json",
        teacher=references,
        runtime=RUNTIMES,
        task=TASK,
    )
    students = student_files("results/eval/{teacher}/{corpus}/{size}/{task}.json")
    return teachers + students + generative_evaluation_files()


# Per-job resources of each group of rules, from the config's `resources` (one place to edit),
# become sbatch options under profiles/slurm and GPU counting under profiles/local. Threads
# equal cpus_per_task, so a job uses exactly the cores SLURM gives it (capped at --cores locally).
def rule_threads(group):
    return config["resources"][group]["cpus_per_task"]


def rule_resources(group):
    spec = config["resources"][group]
    resources = {key: spec[key] for key in ("cpus_per_task", "mem_mb", "runtime")}
    if spec.get("gpu"):
        resources["gpu"] = spec["gpu"]
        if spec.get("gpu_model"):
            resources["gpu_model"] = spec["gpu_model"]
    return resources


# What a job's outputs depend on enters as `params.settings`: a slice of the config, in the
# config's own shape, that the script hands to the library in place of the whole config.
# Editing a value reruns exactly the jobs whose slice holds it (Snakemake's params trigger),
# and a key the library reads but the rule does not declare fails loudly (KeyError) instead of
# going unseen. Execution settings (tracking, resources, allow_network) are in no slice: they
# change where and how a job runs, not what it computes, so editing them reruns nothing.
def config_slice(*keys):
    """The config keys `keys` ("a" or "a.b"), in the config's nesting; absent optional keys
    (e.g. `energy`) stay absent."""
    part = {}
    for key in keys:
        *parents, leaf = key.split(".")
        source, target = config, part
        for name in parents:
            source = source[name]
            target = target.setdefault(name, {})
        if leaf in source:
            target[leaf] = source[leaf]
    return part


# Keys that change what any model-running job computes.
MODEL_KEYS = ("seed", "trust_remote_code", "device", "max_length")
# Keys of every training run: seeds, dev scoring (batch size), energy measurement.
TRAINING_KEYS = (*MODEL_KEYS, "seeds", "evaluate.batch_size", "energy")
# Recipe keys of the teacher's signal, which a student trained on gold tags alone never reads.
TEACHER_SIGNAL_KEYS = (
    "temperature",
    "kl_weight",
    "ce_weight",
    "targets",
    "gold_ratio",
    "intermediate",
)


def only(spec, keys):
    return {key: spec[key] for key in keys if key in spec}


def corpus_settings(wildcards):
    """What build_corpus reads of a corpus: all but its augmentation (augment_corpus's)."""
    spec = config["corpora"][wildcards.corpus]
    return {key: value for key, value in spec.items() if key != "augmentation"}


def teacher_prepare_settings(wildcards):
    spec = only(
        config["teachers"][wildcards.teacher], ("source", "licence", "trim_vocabulary")
    )
    return config_slice("trust_remote_code") | {"teachers": {wildcards.teacher: spec}}


def hidden_cache_settings(wildcards):
    return config_slice(
        *MODEL_KEYS,
        "max_words_per_sentence",
        "cache",
        "distill.intermediate.hidden_layers",
    )


def teacher_finetune_settings(wildcards):
    """The teacher's spec, but not how its caches use its runs (`average_seeds`)."""
    spec = config["teachers"][wildcards.teacher]
    spec = {key: value for key, value in spec.items() if key != "average_seeds"}
    return config_slice(*TRAINING_KEYS) | {"teachers": {wildcards.teacher: spec}}


def cache_settings(wildcards):
    teacher = only(config["teachers"][wildcards.teacher], ("average_seeds",))
    return config_slice(*MODEL_KEYS, "max_words_per_sentence", "cache") | {
        "teachers": {wildcards.teacher: teacher}
    }


def intermediate_transfer():
    """Whether the task stage matches the teacher's hidden states (distill.intermediate)."""
    weights = config["distill"]["intermediate"]
    return weights["hidden_weight"] > 0 or weights["relation_weight"] > 0


def gold_only(wildcards):
    """Whether a student's task stage learns from the train split's gold tags alone."""
    mode = config["sizes"][wildcards.size]["mode"]
    return wildcards.corpus == BASELINE_CORPUS or mode == "general"


def distill_settings(wildcards):
    """A student's slice: its size, the recipe keys its mode uses, its teacher's mix."""
    size = config["sizes"][wildcards.size]
    baseline = wildcards.corpus == BASELINE_CORPUS
    recipe = dict(config["distill"])
    if baseline or size["mode"] == "task":  # no general stage
        del recipe["general"]
    if gold_only(
        wildcards
    ):  # no teacher logits; gold_ratio still sizes an epoch budget
        unread = set(TEACHER_SIGNAL_KEYS) - (
            {"gold_ratio"} if recipe["epochs"] is not None else set()
        )
        recipe = {k: v for k, v in recipe.items() if k not in unread}
    teacher = only(
        config["teachers"][wildcards.teacher], ("mix", "init", "labels_from", "licence")
    )
    return config_slice(*TRAINING_KEYS, "max_words_per_sentence") | {
        "distill": recipe,
        "sizes": {wildcards.size: size},
        "teachers": {wildcards.teacher: teacher},
    }


def evaluation_settings(wildcards):
    """Scoring and timing settings, and what the model card names: the teacher's source and
    licence, the corpus's licence, the task."""
    corpus = getattr(wildcards, "corpus", None)
    teacher = only(config["teachers"][wildcards.teacher], ("source", "licence"))
    part = config_slice(*MODEL_KEYS, "evaluate", "energy") | {
        "teachers": {wildcards.teacher: teacher},
        "tasks": {wildcards.task: config["tasks"][wildcards.task]},
        "corpora": {},
    }
    if corpus in config["corpora"]:
        part["corpora"][corpus] = only(config["corpora"][corpus], ("licence",))
    return part


def report_settings(wildcards):
    """The report shows the config itself: every key but the execution settings."""
    return {
        key: value
        for key, value in config.items()
        if key not in ("tracking", "resources", "allow_network")
    }


def external_corpus_files(wildcards):
    """Local files and folders a corpus reads: editing one rebuilds the corpus."""
    sources = config["corpora"][wildcards.corpus]["sources"]
    return [source["path"] for source in sources if "path" in source]


def external_task_files(wildcards):
    files = config["tasks"][wildcards.task].get("files", {})
    return [files[key] for key in TASK_FILE_PATHS if key in files]


# ---------------------------------------------------------------------------------------------
# The seq2seq family (workflow/rules/seq2seq.smk): its grid, files and slices.
S2S = config["seq2seq"]
S2S_SWEEP = S2S.get("sweep", {})
S2S_ROBUSTNESS_SETS = ("typo5", "abbrev", "unseen")
S2S_SPLITS = ("train", "dev", "test", *(f"test_{name}" for name in S2S_ROBUSTNESS_SETS))
S2S_TRAINED_SIZES = _names_pattern(
    n for n, s in S2S.get("sizes", {}).items() if "decoder_layers" in s
)
S2S_COMPRESSED_SIZES = _names_pattern(
    n for n, s in S2S.get("sizes", {}).items() if "compress" in s
)


def s2s_variants():
    """(corpus, route) of every student: shrink learns from gold pairs alone (corpus `gold`),
    the KD routes from each transfer corpus."""
    routes = S2S_SWEEP.get("routes", [])
    variants = [(BASELINE_CORPUS, "shrink")] if "shrink" in routes else []
    return variants + [
        (corpus, route)
        for corpus in S2S_SWEEP.get("corpora", [])
        for route in routes
        if route != "shrink"
    ]


def s2s_evaluation_files(wildcards=None):
    files = expand("results/seq2seq/eval/lead/{task}.json", task=S2S_SWEEP["tasks"])
    for task in S2S_SWEEP["tasks"]:
        for teacher in S2S_SWEEP["teachers"]:
            files.append(f"results/seq2seq/eval/{teacher}/{task}/teacher.json")
            for corpus, route in s2s_variants():
                for size in S2S_SWEEP["sizes"]:
                    files.append(
                        f"results/seq2seq/eval/{teacher}/{task}/{corpus}/{route}/{size}.json"
                    )
    return files


def sweep_targets(wildcards):
    """What `snakemake` with no target builds: each family's report (`families`)."""
    targets = []
    if "ner" in config["families"]:
        targets += [
            "results/report/tradeoff.csv",
            "results/report/pareto_f1_params.png",
        ]
    if "seq2seq" in config["families"]:
        targets += [
            "results/seq2seq/report/tradeoff.csv",
            "results/seq2seq/report/report.html",
        ]
    return targets


def teacher_text_files(wildcards):
    """The text a trimmed teacher vocabulary must cover: each family's corpora and its task's
    train/dev text (NER sentences, seq2seq pairs)."""
    corpora, tasks = [], []
    if "ner" in config["families"]:
        corpora += SWEEP["corpora"]
        tasks += expand(
            "results/tasks/{task}/{split}.jsonl", task=TASK, split=["train", "dev"]
        )
    if "seq2seq" in config["families"]:
        corpora += [c for c in S2S_SWEEP["corpora"] if c not in corpora]
        tasks += expand(
            "results/seq2seq/tasks/{task}/{split}.jsonl",
            task=S2S_SWEEP["tasks"],
            split=["train", "dev"],
        )
    return {
        "corpora": [f"results/corpus/{corpus}/augmented.jsonl" for corpus in corpora],
        "task": tasks,
    }


def s2s_teacher_folder(wildcards):
    folder = f"results/seq2seq/teachers/{wildcards.teacher}/{wildcards.task}"
    return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}


def s2s_test_files(wildcards):
    folder = f"results/seq2seq/tasks/{wildcards.task}"
    return {"clean": f"{folder}/test.jsonl"} | {
        name: f"{folder}/test_{name}.jsonl" for name in S2S_ROBUSTNESS_SETS
    }


def s2s_distill_inputs(wildcards):
    """A route's files: the fine-tuned teacher and the gold pairs; the teacher's outputs on the
    transfer corpus (sequence, word); its cached top-k along the targets (word)."""
    folder = f"results/seq2seq/tasks/{wildcards.task}"
    inputs = {
        "teacher": f"results/seq2seq/teachers/{wildcards.teacher}/{wildcards.task}/model",
        "train": f"{folder}/train.jsonl",
        "dev": f"{folder}/dev.jsonl",
    }
    if (wildcards.route == "shrink") != (wildcards.corpus == BASELINE_CORPUS):
        raise WorkflowError(
            f"{wildcards.route} students learn from {'gold pairs alone (corpus gold)' if wildcards.route == 'shrink' else 'a transfer corpus'}"
        )
    cache = (
        f"results/seq2seq/cache/{wildcards.teacher}/{wildcards.task}/{wildcards.corpus}"
    )
    if wildcards.route != "shrink":
        inputs["outputs"] = f"{cache}/outputs.jsonl"
    if wildcards.route == "word":
        inputs["topk"] = f"{cache}/topk.npz"
    return inputs


def s2s_compressed_from(wildcards):
    source = S2S["sizes"][wildcards.size]["from"]
    folder = (
        f"results/seq2seq/students/{wildcards.teacher}/{wildcards.task}/{wildcards.corpus}/"
        f"{wildcards.route}/{source}"
    )
    return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}


def s2s_slice(*keys):
    """`config_slice` of the seq2seq block's `keys`."""
    return config_slice(*(f"seq2seq.{key}" for key in keys))


# The seq2seq distill keys each route reads: shrink no teacher signal, sequence no top-k.
S2S_ROUTE_UNREAD = {
    "shrink": ("kl_weight", "topk", "transfer_docs"),
    "sequence": ("kl_weight", "topk"),
    "word": (),
}


def s2s_pairs_settings(wildcards):
    return {
        "seed": config["seed"],
        "seq2seq": {"tasks": {wildcards.task: S2S["tasks"][wildcards.task]}},
    }


def s2s_finetune_settings(wildcards):
    teacher = only(config["teachers"][wildcards.teacher], ("source", "licence"))
    return (
        config_slice(*MODEL_KEYS, "seeds", "energy")
        | {"teachers": {wildcards.teacher: teacher}}
        | s2s_slice("seeds", "finetune", "freeze_encoder", "generation")
    )


def s2s_outputs_settings(wildcards):
    return config_slice(*MODEL_KEYS) | {
        "seq2seq": {
            "generation": S2S["generation"],
            "distill": only(S2S["distill"], ("transfer_docs",)),
        }
    }


def s2s_topk_settings(wildcards):
    return config_slice(*MODEL_KEYS) | {
        "seq2seq": {
            "generation": S2S["generation"],
            "distill": only(S2S["distill"], ("topk",)),
        }
    }


def s2s_distill_settings(wildcards):
    unread = S2S_ROUTE_UNREAD[wildcards.route]
    recipe = {k: v for k, v in S2S["distill"].items() if k not in unread}
    return config_slice(*MODEL_KEYS, "seeds", "energy") | {
        "seq2seq": {
            "seeds": S2S["seeds"],
            "freeze_encoder": S2S["freeze_encoder"],
            "distill": recipe,
            "generation": S2S["generation"],
            "sizes": {wildcards.size: S2S["sizes"][wildcards.size]},
        }
    }


def s2s_evaluation_settings(wildcards):
    return config_slice(*MODEL_KEYS, "evaluate.latency_threads", "energy") | s2s_slice(
        "generation", "evaluate"
    )


def s2s_identity(wildcards, role):
    """The names an evaluation JSON carries (its row of the report)."""
    task = wildcards.task
    names = {
        "family": "seq2seq",
        "task": task,
        "kind": S2S["tasks"][task]["kind"],
        "role": role,
    }
    if role == "baseline":
        return names | {
            "teacher": "lead",
            "corpus": "lead",
            "route": "lead",
            "size": "lead",
        }
    if role == "teacher":
        return names | {
            "teacher": wildcards.teacher,
            "corpus": "teacher",
            "route": "teacher",
            "size": "teacher",
        }
    return names | {
        k: getattr(wildcards, k) for k in ("teacher", "corpus", "route", "size")
    }


def s2s_report_settings(wildcards):
    return {"seq2seq": S2S} | config_slice(
        "teachers", "corpora", "licences", "seed", "seeds"
    )


def external_pair_files(wildcards):
    files = S2S["tasks"][wildcards.task].get("files", {})
    return [files[key] for key in ("train", "dev", "test") if key in files]


# ---------------------------------------------------------------------------------------------
# Generative taggers in the NER comparison (generative.smk)

GENERATIVE = config["generative"]


def tagger_spec(wildcards):
    return GENERATIVE["taggers"][wildcards.tagger]


def generative_settings(wildcards):
    """A tagger's own entry, and what its training or evaluation reads (a fine-tuned one: its
    base teacher's source and licence, and the fine-tuning recipe)."""
    spec = tagger_spec(wildcards)
    part = config_slice(*MODEL_KEYS, "seeds", "evaluate", "energy") | {
        "generative": {
            "taggers": {wildcards.tagger: spec},
            "generation": GENERATIVE["generation"],
            "robustness_sets": GENERATIVE["robustness_sets"],
        }
    }
    if spec["kind"] == "finetuned":
        teacher = only(config["teachers"][spec["from"]], ("source", "licence"))
        part["teachers"] = {spec["from"]: teacher}
    return part


def tagger_base(wildcards):
    """A fine-tuned encoder-decoder starts from its prepared teacher; a causal LM is read from
    its source by the job."""
    spec = tagger_spec(wildcards)
    if spec["kind"] != "finetuned":
        return {}
    return {"base": f"results/teachers/{spec['from']}/base"}


def generative_model(wildcards):
    """A fine-tuned tagger's folder; a prompted one is read from its source by the job."""
    if tagger_spec(wildcards)["kind"] not in TRAINED_TAGGERS:
        return {}
    return {"model": f"results/generative/{wildcards.tagger}/{wildcards.task}/model"}


def generative_evaluation_files(wildcards=None):
    """The swept taggers' rows, and those of the taggers generative teachers learn from."""
    teaching = generative_teachers(config).values()
    taggers = dict.fromkeys([*GENERATIVE["sweep"], *teaching])
    return expand(
        "results/generative/{tagger}/{task}/eval.json", tagger=taggers, task=TASK
    )


def silver_inputs(wildcards):
    """What labelling with a generative teacher's tagger reads: the fine-tuned tagger's folder
    (a prompted one is read from its source), the task's labels and its train split (few-shot
    examples)."""
    tagger = config["teachers"][wildcards.teacher]["labels_from"]
    inputs = {
        "labels": f"results/tasks/{TASK}/labels.json",
        "train": f"results/tasks/{TASK}/train.jsonl",
    }
    if GENERATIVE["taggers"][tagger]["kind"] in TRAINED_TAGGERS:
        inputs["model"] = f"results/generative/{tagger}/{TASK}/model"
    return inputs


def silver_settings(wildcards):
    """What a labelling reads: the generative teacher, its tagger's entry (and a fine-tuned
    one's base licence), the generation settings, the sentence and shard sizes."""
    teacher = config["teachers"][wildcards.teacher]
    name = teacher["labels_from"]
    spec = GENERATIVE["taggers"][name]
    teachers = {wildcards.teacher: teacher}
    if spec["kind"] == "finetuned":
        teachers[spec["from"]] = only(config["teachers"][spec["from"]], ("licence",))
    return config_slice(*MODEL_KEYS, "max_words_per_sentence", "cache.shard_size") | {
        "teachers": teachers,
        "generative": {
            "taggers": {name: spec},
            "generation": GENERATIVE["generation"],
        },
    }
