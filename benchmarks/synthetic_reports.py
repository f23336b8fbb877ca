"""Print how fast the synthetic report generator runs (issue 3 asks for 100,000 in under a minute).

Usage: python benchmarks/synthetic_reports.py [N]
"""

from __future__ import annotations

import sys
import time

from medistill.data.lexicons import load_lexicons
from medistill.data.synthetic import generate_reports


def main() -> None:
    n_docs = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    lexicons = load_lexicons()  # loaded once, as in a build
    start = time.perf_counter()
    docs = generate_reports(n_docs, seed=1, lexicons=lexicons)
    seconds = time.perf_counter() - start
    characters = sum(len(d["text"]) for d in docs)
    mentions = sum(len(d["entities"]) for d in docs)
    print(f"{n_docs} reports, {characters / 1e6:.1f} M characters, {mentions} mentions")
    print(f"{seconds:.1f} s: {n_docs / seconds:,.0f} reports/s ({seconds / 60:.0%} of a minute)")


if __name__ == "__main__":
    main()
