"""Print what a finished sweep measured: each student's F1 retention and CPU speedup.

Usage: python benchmarks/sweep_tradeoff.py [results/report/tradeoff.csv] [--min-speedup 2]

Prints the table and the student with the best F1 retention among those at least
`--min-speedup` times faster than their teacher (batch size 1, CPU, fixed threads).
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", nargs="?", default="results/report/tradeoff.csv")
    parser.add_argument("--min-speedup", type=float, default=2.0)
    args = parser.parse_args()

    table = pd.read_csv(args.table)
    columns = [
        "teacher",
        "corpus",
        "size",
        "f1",
        "f1_typo5",
        "f1_retention",
        "speedup",
        "params_total",
        "latency_ms_b1",
    ]
    print(table[columns].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    students = table[(table["role"] == "student") & (table["speedup"] >= args.min_speedup)]
    if students.empty:
        print(f"\nno student is {args.min_speedup}x faster than its teacher")
        return
    best = students.loc[students["f1_retention"].idxmax()]
    print(
        f"\nbest student at >= {args.min_speedup}x speedup: {best['teacher']}/{best['corpus']}/"
        f"{best['size']}: F1 {best['f1']:.3f} = {best['f1_retention']:.1%} of its teacher's, "
        f"{best['speedup']:.2f}x faster ({best['latency_ms_b1']:.2f} ms at batch 1)"
    )


if __name__ == "__main__":
    main()
