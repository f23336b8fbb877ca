"""Print an ablation table of the distillation recipe: each setting's distilled student against
its gold-only baseline (F1 mean +- std over seeds, difference, the one-sided 95% lower bound
and p-value of the paired bootstrap over test documents (or sentences) and seed runs, and p
Holm-adjusted over every setting's students), with the teacher's F1 for retention.

Usage: python benchmarks/ablation.py --workdir DIR --configfile FILE [FILE ...] [--cores N]
       [--only SETTING_PREFIX ...]

One working directory for all settings: each setting layers one recipe edit over the config
files, and since every rule declares the config it depends on, only the distilled students,
their evaluations and the report rerun between settings; the teacher, the caches and the
baselines are trained once. Each setting's evaluation files are kept under
DIR/ablation/<setting>/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from medistill.core.significance import holm

ROOT = Path(__file__).resolve().parents[1]
# The levers of the recipe, each on its own (issue: "each lever on and off").
SETTINGS = {
    "transfer corpus only (gold_ratio 0)": {"distill": {"gold_ratio": 0.0}},
    "+ gold train split, 25% (gold_ratio 0.25)": {"distill": {"gold_ratio": 0.25}},
    "gold train split only, KL + CE (gold_ratio 1)": {"distill": {"gold_ratio": 1.0}},
    "hard pseudo-labels, transfer only (targets hard)": {
        "distill": {"gold_ratio": 0.0, "targets": "hard"}
    },
    # The temperature is chosen on dev: the table's dev column, not its test F1, picks it.
    "temperature 1 (gold_ratio 0.25)": {"distill": {"temperature": 1.0}},
    "temperature 4 (gold_ratio 0.25)": {"distill": {"temperature": 4.0}},
    "+ the teacher's last hidden layer (intermediate hidden_weight 1)": {
        "distill": {"intermediate": {"hidden_weight": 1.0}}
    },
    # Last, as they rerun more than the students: the baseline is cut from the same teacher.
    "layers of the pretrained teacher (cut_from pretrained)": {
        "sizes": {"L3": {"cut_from": "pretrained"}}
    },
    "teacher's seed runs averaged (average_seeds)": {
        "teachers": {"minilm-l6": {"average_seeds": True}}
    },
}


def run_setting(workdir: Path, configfiles: list[str], edit: dict, cores: int) -> float:
    edit_file = workdir / "ablation-edit.yaml"
    edit_file.write_text(yaml.safe_dump(edit))
    started = time.monotonic()
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
    command += ["--directory", str(workdir), "--cores", str(cores), "--configfile"]
    command += [*configfiles, str(edit_file)]
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    with open(workdir / "ablation.log", "a") as log:
        subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return time.monotonic() - started


def dev_f1(workdir: Path, row: pd.Series) -> float:
    """Mean dev F1 (the score each run kept its best step by) over a student's seed runs."""
    folder = workdir / "results" / "students" / row["teacher"] / row["corpus"] / row["size"]
    runs = [folder / "model", *sorted((folder / "seeds").glob("seed-*"))]
    scores = [
        json.loads((run / "config.json").read_text())["medistill_run"]["dev_f1"] for run in runs
    ]
    return sum(scores) / len(scores)


def rows(workdir: Path, table: pd.DataFrame, setting: str, minutes: float) -> list[dict]:
    teacher = table[table["role"] == "teacher"].iloc[0]
    out = []
    for _, row in table[(table["role"] == "student") & (table["corpus"] != "gold")].iterrows():
        out.append(
            {
                "setting": setting,
                "size": row["size"],
                "dev_f1": f"{dev_f1(workdir, row):.4f}",
                "f1": f"{row['f1']:.4f} +- {row['f1_std']:.4f}",
                "baseline_f1": f"{row['baseline_f1']:.4f}",
                "f1_vs_baseline": f"{row['f1_vs_baseline']:+.4f}",
                "lower_95": f"{row['f1_vs_baseline_lower']:+.4f}",
                "p_vs_baseline": row["p_vs_baseline"],
                "retention": f"{row['f1'] / teacher['f1']:.3f}",
                "speedup": f"{row['speedup']:.2f}x",
                "minutes": f"{minutes:.1f}",
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--configfile", nargs="+", required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--only", nargs="+", default=[], help="settings whose name starts so")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    configfiles = [str(Path(f).resolve()) for f in args.configfile]
    table_rows = []
    for setting, edit in SETTINGS.items():
        if args.only and not any(setting.startswith(prefix) for prefix in args.only):
            continue
        minutes = run_setting(workdir, configfiles, edit, args.cores) / 60
        table = pd.read_csv(workdir / "results/report/tradeoff.csv")
        kept = workdir / "ablation" / re.sub(r"[^a-z0-9]+", "-", setting.lower()).strip("-")
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(workdir / "results/eval", kept)
        table.to_csv(kept / "tradeoff.csv", index=False)
        table_rows += rows(workdir, table, setting, minutes)
        print(f"{setting}: done in {minutes:.1f} min", flush=True)
    teacher = table[table["role"] == "teacher"].iloc[0]
    print(f"\nteacher {teacher['teacher']}: F1 {teacher['f1']:.4f} +- {teacher['f1_std']:.4f}")
    # every setting's students are comparisons of one study: p adjusted over all of them
    summary = pd.DataFrame(table_rows)
    summary.insert(
        summary.columns.get_loc("p_vs_baseline") + 1, "p_holm", holm(summary["p_vs_baseline"])
    )
    print(summary.to_markdown(index=False, floatfmt=".3f"))


if __name__ == "__main__":
    main()
