"""The seq2seq family's job graph (`workflow/rules/seq2seq.smk`): its grid of students, the
files each rule reads and each rule's config slice, for one validated config. Like `plan.Plan`,
its methods take Snakemake's wildcards (anything with the wildcard names as attributes)."""

from __future__ import annotations

from medistill.core.config_slices import MODEL_KEYS, config_slice, names_pattern, only
from medistill.core.errors import ConfigError
from medistill.data.tasks import BASELINE_CORPUS
from medistill.seq2seq.prompts import INSTRUCTIONS
from medistill.seq2seq.tasks import ROUTES, SEQ2SEQ_ROBUSTNESS_SETS, SHRINK_ROUTE

# The seq2seq distill keys each route does not read: shrink no teacher signal, sequence no top-k.
ROUTE_UNREAD_KEYS = {
    SHRINK_ROUTE: ("kl_weight", "topk", "transfer_docs"),
    "sequence": ("kl_weight", "topk"),
    "word": (),
}
SPLITS = ("train", "dev", "test", *(f"test_{name}" for name in SEQ2SEQ_ROBUSTNESS_SETS))


class Seq2SeqPlan:
    def __init__(self, config: dict):
        self.config = config
        self.spec = config["seq2seq"]
        self.sweep = self.spec["sweep"]
        sizes = self.spec.get("sizes", {})
        self.trained_sizes = names_pattern(n for n, s in sizes.items() if "decoder_layers" in s)
        self.compressed_sizes = names_pattern(n for n, s in sizes.items() if "compress" in s)
        self.routes_pattern = names_pattern(ROUTES)
        # Prompted LLM teachers write outputs; the others are fine-tuned BERT2BERTs (or hub
        # encoder-decoders): distinct rules make their caches and rows.
        self.llm_teachers = self.spec["llm_teachers"]
        self.llm_pattern = names_pattern(self.llm_teachers)
        self.finetuned_pattern = names_pattern(
            n for n in config["teachers"] if n not in self.llm_teachers
        )

    def variants(self, teacher: str) -> list[tuple[str, str]]:
        """(corpus, route) of every student of `teacher`: shrink learns from gold pairs alone
        (corpus `gold`), the KD routes from each transfer corpus. An LLM teacher's students
        take the sequence route only: their shrink twin is its `init`'s, and word-level KD
        needs the teacher's tokenizer to be the student's."""
        routes = self.sweep["routes"]
        if teacher in self.llm_teachers:
            routes = [route for route in routes if route == "sequence"]
        variants = [(BASELINE_CORPUS, SHRINK_ROUTE)] if SHRINK_ROUTE in routes else []
        return variants + [
            (corpus, route)
            for corpus in self.sweep.get("corpora", [])
            for route in routes
            if route != SHRINK_ROUTE
        ]

    def evaluation_files(self, wildcards=None) -> list[str]:
        tasks = self.sweep["tasks"]
        files = [f"results/seq2seq/eval/lead/{task}.json" for task in tasks]
        for task in tasks:
            for teacher in self.sweep["teachers"]:
                folder = f"results/seq2seq/eval/{teacher}/{task}"
                files.append(f"{folder}/teacher.json")
                files += [
                    f"{folder}/{corpus}/{route}/{size}.json"
                    for corpus, route in self.variants(teacher)
                    for size in self.sweep["sizes"]
                ]
        return files

    def split_files(self) -> list[str]:
        """prepare_pairs's outputs (patterns of the `task` wildcard)."""
        return [f"results/seq2seq/tasks/{{task}}/{split}.jsonl" for split in SPLITS]

    def train_dev_files(self) -> list[str]:
        return [
            f"results/seq2seq/tasks/{task}/{split}.jsonl"
            for task in self.sweep["tasks"]
            for split in ("train", "dev")
        ]

    def teacher_folder(self, wildcards) -> dict:
        folder = f"results/seq2seq/teachers/{wildcards.teacher}/{wildcards.task}"
        return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}

    def test_files(self, wildcards) -> dict:
        folder = f"results/seq2seq/tasks/{wildcards.task}"
        return {"clean": f"{folder}/test.jsonl"} | {
            name: f"{folder}/test_{name}.jsonl" for name in SEQ2SEQ_ROBUSTNESS_SETS
        }

    def distill_inputs(self, wildcards) -> dict:
        """A route's files: the fine-tuned teacher and the gold pairs; the teacher's outputs
        on the transfer corpus (sequence, word); its cached top-k along the targets (word)."""
        shrink = wildcards.route == SHRINK_ROUTE
        if shrink != (wildcards.corpus == BASELINE_CORPUS):
            learns_from = "gold pairs alone (corpus gold)" if shrink else "a transfer corpus"
            raise ConfigError(f"{wildcards.route} students learn from {learns_from}")
        folder = f"results/seq2seq/tasks/{wildcards.task}"
        inputs = {
            "teacher": self.student_start(wildcards.teacher, wildcards.task),
            "train": f"{folder}/train.jsonl",
            "dev": f"{folder}/dev.jsonl",
        }
        cache = f"results/seq2seq/cache/{wildcards.teacher}/{wildcards.task}/{wildcards.corpus}"
        if not shrink:
            inputs["outputs"] = f"{cache}/outputs.jsonl"
        if wildcards.route == "word":
            inputs["topk"] = f"{cache}/topk.npz"
        return inputs

    def student_start(self, teacher: str, task: str) -> str:
        """The fine-tuned encoder-decoder a student is shrunk from: its teacher, or an LLM
        teacher's `init` BERT2BERT."""
        if teacher in self.llm_teachers:
            teacher = self.llm_teachers[teacher]["init"]
        return f"results/seq2seq/teachers/{teacher}/{task}/model"

    def llm_settings(self, wildcards, *keys: str) -> dict:
        """An LLM teacher's slice: its entry, its task's kind and instruction (editing the
        prompt reruns its outputs), and the config `keys` the job reads."""
        kind = self.spec["tasks"][wildcards.task]["kind"]
        return config_slice(self.config, *MODEL_KEYS, *keys) | {
            "instruction": INSTRUCTIONS[kind],
            "seq2seq": {
                "llm_teachers": {wildcards.teacher: self.llm_teachers[wildcards.teacher]},
                "tasks": {wildcards.task: {"kind": kind}},
            },
        }

    def llm_outputs_settings(self, wildcards) -> dict:
        part = self.llm_settings(wildcards)
        part["seq2seq"]["distill"] = only(self.spec["distill"], ("transfer_docs",))
        return part

    def llm_evaluation_settings(self, wildcards) -> dict:
        part = self.llm_settings(wildcards, "evaluate.latency_threads", "energy")
        part["seq2seq"]["evaluate"] = self.spec["evaluate"]
        return part

    def compressed_from(self, wildcards) -> dict:
        source = self.spec["sizes"][wildcards.size]["from"]
        folder = (
            f"results/seq2seq/students/{wildcards.teacher}/{wildcards.task}/"
            f"{wildcards.corpus}/{wildcards.route}/{source}"
        )
        return {"model": f"{folder}/model", "seeds": f"{folder}/seeds"}

    def compress_kind(self, wildcards) -> str:
        return self.spec["sizes"][wildcards.size]["compress"]

    def block_slice(self, *keys: str) -> dict:
        """`config_slice` of the seq2seq block's `keys`."""
        return config_slice(self.config, *(f"seq2seq.{key}" for key in keys))

    def pairs_settings(self, wildcards) -> dict:
        return {
            "seed": self.config["seed"],
            "seq2seq": {"tasks": {wildcards.task: self.spec["tasks"][wildcards.task]}},
        }

    def external_pair_files(self, wildcards) -> list[str]:
        files = self.spec["tasks"][wildcards.task].get("files", {})
        return [files[key] for key in ("train", "dev", "test") if key in files]

    def finetune_settings(self, wildcards) -> dict:
        teacher = only(self.config["teachers"][wildcards.teacher], ("source", "licence"))
        return (
            config_slice(self.config, *MODEL_KEYS, "seeds", "energy")
            | {"teachers": {wildcards.teacher: teacher}}
            | self.block_slice("seeds", "finetune", "freeze_encoder", "generation")
        )

    def _cache_settings(self, distill_key: str) -> dict:
        return config_slice(self.config, *MODEL_KEYS) | {
            "seq2seq": {
                "generation": self.spec["generation"],
                "distill": only(self.spec["distill"], (distill_key,)),
            }
        }

    def outputs_settings(self, wildcards) -> dict:
        return self._cache_settings("transfer_docs")

    def topk_settings(self, wildcards) -> dict:
        return self._cache_settings("topk")

    def distill_settings(self, wildcards) -> dict:
        unread = ROUTE_UNREAD_KEYS[wildcards.route]
        recipe = {k: v for k, v in self.spec["distill"].items() if k not in unread}
        return config_slice(self.config, *MODEL_KEYS, "seeds", "energy") | {
            "seq2seq": {
                "seeds": self.spec["seeds"],
                "freeze_encoder": self.spec["freeze_encoder"],
                "distill": recipe,
                "generation": self.spec["generation"],
                "sizes": {wildcards.size: self.spec["sizes"][wildcards.size]},
            }
        }

    def evaluation_settings(self, wildcards) -> dict:
        keys = (*MODEL_KEYS, "evaluate.latency_threads", "energy")
        return config_slice(self.config, *keys) | self.block_slice("generation", "evaluate")

    def identity(self, wildcards, role: str) -> dict:
        """The names an evaluation JSON carries (its row of the report)."""
        task = wildcards.task
        names = {
            "family": "seq2seq",
            "task": task,
            "kind": self.spec["tasks"][task]["kind"],
            "role": role,
        }
        if role in ("baseline", "teacher"):
            row = "lead" if role == "baseline" else "teacher"
            teacher = "lead" if role == "baseline" else wildcards.teacher
            return names | {"teacher": teacher, "corpus": row, "route": row, "size": row}
        return names | {k: getattr(wildcards, k) for k in ("teacher", "corpus", "route", "size")}

    def report_settings(self, wildcards=None) -> dict:
        return {"seq2seq": self.spec} | config_slice(
            self.config, "teachers", "corpora", "licences", "seed", "seeds"
        )
