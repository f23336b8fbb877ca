"""The job graph a validated config asks for: the grid of students, the files each rule reads
and the config slice each rule's outputs depend on (NER students, teachers, generative taggers).
`workflow/rules/common.smk` builds one `Plan` and the rule files use its methods as input and
params functions; they take Snakemake's wildcards (anything with the wildcard names as
attributes), so the graph's logic is unit-tested without Snakemake (`tests/test_plan.py`).
The seq2seq family's part is `seq2seq.plan.Seq2SeqPlan` (`Plan.seq2seq`)."""

from __future__ import annotations

from pathlib import Path

from medistill.config import TASK_FILE_PATHS, generative_teachers
from medistill.core.config_slices import (
    EXECUTION_KEYS,
    MODEL_KEYS,
    TEACHER_SIGNAL_KEYS,
    TRAINING_KEYS,
    config_slice,
    names_pattern,
    only,
)
from medistill.core.schema import TRAINED_TAGGERS
from medistill.data.sources import corpus_licence
from medistill.data.tasks import BASELINE_CORPUS, ROBUSTNESS_SETS
from medistill.seq2seq.plan import Seq2SeqPlan

# What `snakemake` with no target builds, per family named in `families`.
FAMILY_TARGETS = {
    "ner": ("results/report/tradeoff.csv", "results/report/pareto_f1_params.png"),
    "seq2seq": ("results/seq2seq/report/tradeoff.csv", "results/seq2seq/report/report.html"),
}


class Plan:
    """The NER family's graph and what the families share, for one validated config."""

    def __init__(self, config: dict):
        self.config = config
        self.sweep = config["sweep"]
        self.task = self.sweep["task"]
        self.seq2seq = Seq2SeqPlan(config)
        sizes, teachers = config["sizes"], config["teachers"]
        # Sizes trained by distill_student and sizes compressed from another size, as
        # wildcard patterns that keep the two rules apart.
        self.trained_sizes = names_pattern(n for n, s in sizes.items() if "layers" in s)
        self.compressed_sizes = names_pattern(n for n, s in sizes.items() if "compress" in s)
        # The runtimes of the swept compressed sizes (their `compress` kinds): the teacher is
        # compressed and timed in each too, for speedups against the teacher in the same
        # runtime.
        self.runtimes = sorted(
            {sizes[n]["compress"] for n in self.sweep["sizes"] if "compress" in sizes[n]}
        )
        self.runtimes_pattern = names_pattern(self.runtimes)
        # Teachers whose caches hold an encoder's logits, and generative teachers whose caches
        # hold a generative tagger's silver tags (`labels_from`): two caching rules, one path.
        self.generative_teachers = names_pattern(
            n for n, t in teachers.items() if "labels_from" in t
        )
        self.encoder_teachers = names_pattern(
            n for n, t in teachers.items() if "labels_from" not in t
        )

    # --- the whole workflow -----------------------------------------------------------------

    def sweep_targets(self, wildcards=None) -> list[str]:
        """What `snakemake` with no target builds: each family's report (`families`)."""
        return [path for family in self.config["families"] for path in FAMILY_TARGETS[family]]

    def rule_threads(self, group: str) -> int:
        """Threads equal cpus_per_task, so a job uses exactly the cores SLURM gives it (capped
        at --cores locally)."""
        return self.config["resources"][group]["cpus_per_task"]

    def rule_resources(self, group: str) -> dict:
        """A group of rules' resources from the config's `resources` (one place to edit):
        sbatch options under profiles/slurm, GPU counting under profiles/local."""
        spec = self.config["resources"][group]
        resources = only(spec, ("cpus_per_task", "mem_mb", "runtime"))
        if spec.get("gpu"):
            resources |= only(spec, ("gpu", "gpu_model") if spec.get("gpu_model") else ("gpu",))
        return resources

    def report_settings(self, wildcards=None) -> dict:
        """The report shows the config itself: every key but the execution settings."""
        return {k: v for k, v in self.config.items() if k not in EXECUTION_KEYS}

    def teacher_text_files(self, wildcards=None) -> dict:
        """The text a trimmed teacher vocabulary must cover: each family's corpora and its
        task's train/dev text (NER sentences, seq2seq pairs)."""
        corpora, tasks = [], []
        if "ner" in self.config["families"]:
            corpora += self.sweep["corpora"]
            tasks += [f"results/tasks/{self.task}/{split}.jsonl" for split in ("train", "dev")]
        if "seq2seq" in self.config["families"]:
            corpora += [c for c in self.seq2seq.sweep["corpora"] if c not in corpora]
            tasks += self.seq2seq.train_dev_files()
        return {
            "corpora": [f"results/corpus/{corpus}/augmented.jsonl" for corpus in corpora],
            "task": tasks,
        }

    # --- corpora, tasks, teachers -----------------------------------------------------------

    def corpus_settings(self, wildcards) -> dict:
        """What build_corpus reads of a corpus: all but its augmentation (augment_corpus's)."""
        spec = self.config["corpora"][wildcards.corpus]
        return {key: value for key, value in spec.items() if key != "augmentation"}

    def augmentation_settings(self, wildcards) -> dict:
        return self.config["corpora"][wildcards.corpus].get("augmentation", {})

    def external_corpus_files(self, wildcards) -> list[str]:
        """Local files and folders a corpus reads: editing one rebuilds the corpus."""
        sources = self.config["corpora"][wildcards.corpus]["sources"]
        return [source["path"] for source in sources if "path" in source]

    def external_task_files(self, wildcards) -> list[str]:
        files = self.config["tasks"][wildcards.task].get("files", {})
        return [files[key] for key in TASK_FILE_PATHS if key in files]

    def task_spec(self, wildcards) -> dict:
        return self.config["tasks"][wildcards.task]

    def task_test_files(self, wildcards) -> dict:
        """The clean test set and its robustness copies."""
        folder = f"results/tasks/{wildcards.task}"
        return {"clean": f"{folder}/test.jsonl"} | {
            name: f"{folder}/test_{name}.jsonl" for name in ROBUSTNESS_SETS
        }

    def teacher_task(self, teacher: str) -> str:
        """The task a teacher is fine-tuned on (the sweep's, or a mix member's own)."""
        return self.config["teachers"][teacher]["task"]

    def fine_tuned(self, teacher: str) -> str:
        return f"results/teachers/{teacher}/{self.teacher_task(teacher)}/model"

    def init_teacher(self, teacher: str) -> str:
        """The teacher whose weights and tokenizer a student starts from (a mix's `init`)."""
        return self.config["teachers"][teacher].get("init", teacher)

    def teacher_model(self, wildcards) -> str:
        return self.fine_tuned(self.init_teacher(wildcards.teacher))

    def reference_teacher(self, teacher: str) -> str:
        """The row a student's retention and speedup are measured against: the generative
        tagger of a generative teacher, else the teacher its weights come from."""
        return self.config["teachers"][teacher].get("labels_from") or self.init_teacher(teacher)

    def averaged_seed_runs(self, wildcards) -> dict:
        """A teacher whose caches average its seed runs also reads its other runs."""
        if not self.config["teachers"][wildcards.teacher]["average_seeds"]:
            return {}
        return {"seeds": str(Path(self.fine_tuned(wildcards.teacher)).with_name("seeds"))}

    def teacher_prepare_settings(self, wildcards) -> dict:
        spec = only(
            self.config["teachers"][wildcards.teacher],
            ("source", "licence", "trim_vocabulary"),
        )
        return config_slice(self.config, "trust_remote_code") | {
            "teachers": {wildcards.teacher: spec}
        }

    def teacher_finetune_settings(self, wildcards) -> dict:
        """The teacher's spec, but not how its caches use its runs (`average_seeds`)."""
        spec = self.config["teachers"][wildcards.teacher]
        spec = {key: value for key, value in spec.items() if key != "average_seeds"}
        return config_slice(self.config, *TRAINING_KEYS) | {"teachers": {wildcards.teacher: spec}}

    def cache_settings(self, wildcards) -> dict:
        teacher = only(self.config["teachers"][wildcards.teacher], ("average_seeds",))
        return config_slice(self.config, *MODEL_KEYS, "max_words_per_sentence", "cache") | {
            "teachers": {wildcards.teacher: teacher}
        }

    def hidden_cache_settings(self, wildcards=None) -> dict:
        return config_slice(
            self.config,
            *MODEL_KEYS,
            "max_words_per_sentence",
            "cache",
            "distill.intermediate.hidden_layers",
        )

    def general_cache_settings(self, wildcards=None) -> dict:
        return config_slice(
            self.config,
            *MODEL_KEYS,
            "max_words_per_sentence",
            "cache",
            "distill.general.k",
            "distill.general.mask_rate",
            "distill.general.hidden_layers",
        )

    # --- students -----------------------------------------------------------------------------

    def size_runtime(self, size: str) -> str:
        """What runs a size: its `compress` kind (int8, onnx, ...) or torch in float."""
        return self.config["sizes"][size].get("compress", "torch")

    def intermediate_transfer(self) -> bool:
        """Whether the task stage matches the teacher's hidden states (distill.intermediate)."""
        weights = self.config["distill"]["intermediate"]
        return weights["hidden_weight"] > 0 or weights["relation_weight"] > 0

    def gold_only(self, wildcards) -> bool:
        """Whether a student's task stage learns from the train split's gold tags alone."""
        mode = self.config["sizes"][wildcards.size]["mode"]
        return wildcards.corpus == BASELINE_CORPUS or mode == "general"

    def student_grid(self) -> list[tuple[str, str]]:
        """(teacher, corpus) of every student: each swept teacher's on each transfer corpus;
        the baselines (corpus `gold`) once per encoder the students start from, since a mix's
        or a generative teacher's baseline is its `init` teacher's (same cut, same gold
        tags)."""
        grid = [(t, c) for t in self.sweep["teachers"] for c in self.sweep["corpora"]]
        if self.sweep["baselines"]:
            grid += [(t, BASELINE_CORPUS) for t in self.reference_encoders()]
        return grid

    def reference_encoders(self) -> list[str]:
        """The encoders the swept teachers' students start from, each once, in sweep order."""
        return list(dict.fromkeys(self.init_teacher(t) for t in self.sweep["teachers"]))

    def student_files(self, pattern: str) -> list[str]:
        return [
            pattern.format(teacher=teacher, corpus=corpus, size=size, task=self.task)
            for teacher, corpus in self.student_grid()
            for size in self.sweep["sizes"]
        ]

    def distill_inputs(self, wildcards) -> dict:
        """What a size's mode reads: the corpus and its task logits, general cache, or both; a
        baseline (corpus `gold`) reads the task's gold labels alone (the pretrained teacher
        too, which a general-mode student is cut from), and the swept corpus for its gold tags
        with `distill.corpus_gold`."""
        size = self.config["sizes"][wildcards.size]
        distill = self.config["distill"]
        mode = size["mode"]
        members = self.config["teachers"][wildcards.teacher].get("mix", [wildcards.teacher])
        init = self.init_teacher(wildcards.teacher)
        pretrained_cut = mode != "task" or size["cut_from"] == "pretrained"
        base = {"base": f"results/teachers/{init}/base"} if pretrained_cut else {}
        if self.gold_only(wildcards) and distill["epochs"] is not None:
            # steps sized from epochs: a run on the train split gets the largest corpus's budget
            base["budget_corpora"] = [
                f"results/corpus/{corpus}/augmented.jsonl" for corpus in self.sweep["corpora"]
            ]
        if wildcards.corpus == BASELINE_CORPUS:
            if distill["corpus_gold"]:  # the twin learns the corpus's gold tags too
                base["docs"] = f"results/corpus/{self.sweep['corpora'][0]}/augmented.jsonl"
            return base
        inputs = {"docs": f"results/corpus/{wildcards.corpus}/augmented.jsonl"}
        if mode != "general":
            inputs["cache"] = [
                f"results/cache/{m}/{wildcards.corpus}/task/{self.teacher_task(m)}/manifest.json"
                for m in members
            ]
            # the task's own train split, with the teacher's logits on it (distill.gold_ratio)
            gold_mixed = distill["gold_ratio"] > 0
            if gold_mixed:
                inputs["train_cache"] = [
                    f"results/cache/{m}/task-train/{wildcards.task}/manifest.json" for m in members
                ]
            # hidden states of the teacher the student is cut from (distill.intermediate)
            if self.intermediate_transfer():
                inputs["hidden_cache"] = (
                    f"results/cache/{init}/{wildcards.corpus}/hidden/{self.teacher_task(init)}/"
                    "manifest.json"
                )
                if gold_mixed:
                    inputs["train_hidden_cache"] = (
                        f"results/cache/{init}/task-hidden-train/{wildcards.task}/manifest.json"
                    )
        if mode != "task":  # the general stage learns from the init teacher alone
            inputs["general_cache"] = (
                f"results/cache/{init}/{wildcards.corpus}/general/manifest.json"
            )
        return inputs | base

    def distill_settings(self, wildcards) -> dict:
        """A student's slice: its size, the recipe keys its mode uses, its teacher's mix."""
        size = self.config["sizes"][wildcards.size]
        recipe = dict(self.config["distill"])
        if wildcards.corpus == BASELINE_CORPUS or size["mode"] == "task":  # no general stage
            del recipe["general"]
        if self.gold_only(wildcards):  # no teacher logits; gold_ratio still sizes an epoch budget
            unread = set(TEACHER_SIGNAL_KEYS) - (
                {"gold_ratio"} if recipe["epochs"] is not None else set()
            )
            recipe = {k: v for k, v in recipe.items() if k not in unread}
        teacher = only(
            self.config["teachers"][wildcards.teacher],
            ("mix", "init", "labels_from", "licence"),
        )
        return config_slice(self.config, *TRAINING_KEYS, "max_words_per_sentence") | {
            "distill": recipe,
            "sizes": {wildcards.size: size},
            "teachers": {wildcards.teacher: teacher},
        }

    def compressed_from(self, wildcards) -> dict:
        source = self.config["sizes"][wildcards.size]["from"]
        folder = (
            f"results/students/{wildcards.teacher}/{wildcards.task}/{wildcards.corpus}/{source}"
        )
        return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}

    def compress_kind(self, wildcards) -> str:
        return self.config["sizes"][wildcards.size]["compress"]

    # --- evaluation and report -----------------------------------------------------------------

    def baseline_counts(self, wildcards) -> dict:
        """A distilled student is compared with its baseline (the same size trained on gold
        alone) sentence by sentence on the test set: it reads the baseline's per-sentence
        counts."""
        if not self.sweep["baselines"] or wildcards.corpus == BASELINE_CORPUS:
            return {}
        baseline = self.init_teacher(wildcards.teacher)
        folder = f"results/eval/{baseline}/{BASELINE_CORPUS}/{wildcards.size}"
        return {"baseline_counts": f"{folder}/{wildcards.task}.counts.json"}

    def evaluation_settings(self, wildcards) -> dict:
        """Scoring and timing settings, and what the model card names: the teacher's source
        and licence, the corpus's licence, the task."""
        corpus = getattr(wildcards, "corpus", None)
        teacher = only(self.config["teachers"][wildcards.teacher], ("source", "licence"))
        part = config_slice(self.config, *MODEL_KEYS, "evaluate", "energy") | {
            "teachers": {wildcards.teacher: teacher},
            "tasks": {wildcards.task: self.config["tasks"][wildcards.task]},
            "corpora": {},
        }
        if corpus in self.config["corpora"]:
            part["corpora"][corpus] = {"licence": corpus_licence(self.config["corpora"][corpus])}
        return part

    def evaluation_files(self, wildcards=None) -> list[str]:
        references = self.reference_encoders()
        teachers = [f"results/eval/{t}/teacher/{self.task}.json" for t in references]
        teachers += [
            f"results/eval/{t}/teacher-{runtime}/{self.task}.json"
            for t in references
            for runtime in self.runtimes
        ]
        students = self.student_files("results/eval/{teacher}/{corpus}/{size}/{task}.json")
        return teachers + students + self.generative_evaluation_files()

    def trained_models(self) -> list[str]:
        """The trained models, whose saved loss histories make the training-curve plot."""
        teachers = [self.fine_tuned(t) for t in self.reference_encoders()]
        return teachers + self.student_files(
            "results/students/{teacher}/{task}/{corpus}/{size}/model"
        )

    # --- generative taggers in the NER comparison ------------------------------------------------

    def tagger_spec(self, wildcards) -> dict:
        return self.config["generative"]["taggers"][wildcards.tagger]

    def generative_settings(self, wildcards) -> dict:
        """A tagger's own entry, and what its training or evaluation reads (a fine-tuned one:
        its base teacher's source and licence, and the fine-tuning recipe)."""
        generative = self.config["generative"]
        spec = self.tagger_spec(wildcards)
        part = config_slice(self.config, *MODEL_KEYS, "seeds", "evaluate", "energy") | {
            "generative": {
                "taggers": {wildcards.tagger: spec},
                "generation": generative["generation"],
                "robustness_sets": generative["robustness_sets"],
            }
        }
        if spec["kind"] == "finetuned":
            teacher = only(self.config["teachers"][spec["from"]], ("source", "licence"))
            part["teachers"] = {spec["from"]: teacher}
        return part

    def tagger_base(self, wildcards) -> dict:
        """A fine-tuned encoder-decoder starts from its prepared teacher; a causal LM is read
        from its source by the job."""
        spec = self.tagger_spec(wildcards)
        if spec["kind"] != "finetuned":
            return {}
        return {"base": f"results/teachers/{spec['from']}/base"}

    def generative_model(self, wildcards) -> dict:
        """A fine-tuned tagger's folder; a prompted one is read from its source by the job."""
        if self.tagger_spec(wildcards)["kind"] not in TRAINED_TAGGERS:
            return {}
        return {"model": f"results/generative/{wildcards.tagger}/{wildcards.task}/model"}

    def tagger_reference(self, wildcards=None) -> str:
        """The teacher row a tagger is compared with: the first swept teacher's encoder,
        whatever the sweep holds."""
        return self.init_teacher(self.sweep["teachers"][0])

    def generative_evaluation_files(self, wildcards=None) -> list[str]:
        """The swept taggers' rows, and those of the taggers generative teachers learn from."""
        teaching = generative_teachers(self.config).values()
        taggers = dict.fromkeys([*self.config["generative"]["sweep"], *teaching])
        return [f"results/generative/{tagger}/{self.task}/eval.json" for tagger in taggers]

    def silver_inputs(self, wildcards) -> dict:
        """What labelling with a generative teacher's tagger reads: the fine-tuned tagger's
        folder (a prompted one is read from its source), the task's labels and its train split
        (few-shot examples)."""
        tagger = self.config["teachers"][wildcards.teacher]["labels_from"]
        task = wildcards.task
        inputs = {
            "labels": f"results/tasks/{task}/labels.json",
            "train": f"results/tasks/{task}/train.jsonl",
        }
        if self.config["generative"]["taggers"][tagger]["kind"] in TRAINED_TAGGERS:
            inputs["model"] = f"results/generative/{tagger}/{task}/model"
        return inputs

    def silver_settings(self, wildcards) -> dict:
        """What a labelling reads: the generative teacher, its tagger's entry (and a fine-tuned
        one's base licence), the generation settings, the sentence and shard sizes."""
        teacher = self.config["teachers"][wildcards.teacher]
        name = teacher["labels_from"]
        spec = self.config["generative"]["taggers"][name]
        teachers = {wildcards.teacher: teacher}
        if spec["kind"] == "finetuned":
            teachers[spec["from"]] = only(self.config["teachers"][spec["from"]], ("licence",))
        slice_keys = (*MODEL_KEYS, "max_words_per_sentence", "cache.shard_size")
        return config_slice(self.config, *slice_keys) | {
            "teachers": teachers,
            "generative": {
                "taggers": {name: spec},
                "generation": self.config["generative"]["generation"],
            },
        }
