"""report.html opened in a real browser (headless Chromium): every embedded plot decodes and the
page renders as more than a blank sheet. Skipped only where Chromium is not installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from medistill.report.build import build_report

CHROMIUM = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
# Written into the page's DOM once everything (images included) has loaded.
CHECK_SCRIPT = """<script>window.addEventListener("load", () => {
  const found = [...document.images].map(i => ({alt: i.alt, complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight}));
  const out = document.createElement("pre");
  out.id = "img-check";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
});</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def rendered_images(page: Path, tmp_path: Path) -> list[dict]:
    """naturalWidth/Height of every <img> of `page` as Chromium decoded them."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    run = chromium(tmp_path, "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="img-check">(.*?)</pre>', run.stdout, re.S)
    assert found, f"no image report in the DOM; chromium said: {run.stderr[-2000:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def screenshot(page: Path, tmp_path: Path) -> Path:
    shot = tmp_path / "report.png"
    run = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,3000", page.as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    return shot


def assert_page_renders(page: Path, tmp_path: Path, n_plots: int = 5) -> Path:
    images = rendered_images(page, tmp_path)
    assert len(images) == n_plots
    for image in images:
        assert image["complete"] and image["width"] > 300 and image["height"] > 200, image
    shot = screenshot(page, tmp_path)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1400)
    not_white = (pixels < 0.95).any(axis=-1)
    assert not_white.mean() > 0.02, "the screenshot is (almost) blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, "no plot colours on screen"
    return shot


def evaluation(corpus: str, size: str, f1: float, params: int, latency: float) -> dict:
    role = "teacher" if corpus == "teacher" else "student"
    return {
        "teacher": "minilm",
        "corpus": corpus,
        "size": size,
        "task": "ner",
        "role": role,
        "f1": f1,
        "f1_typo5": f1 - 0.05,
        "params_total": params,
        "params_non_embedding": params // 2,
        "latency_ms_b1": latency,
    }


@needs_chromium
def test_report_html_renders_its_plots_in_chromium(tmp_path, default_config):
    from medistill.core.schema import with_defaults

    records = [
        evaluation("teacher", "teacher", 0.85, 22_000_000, 20.0),
        evaluation("synth", "L1", 0.60, 13_000_000, 4.0),
        evaluation("synth", "L2", 0.75, 15_000_000, 7.0),
        evaluation("synth", "L3", 0.80, 17_000_000, 11.0),
    ]
    paths = []
    for i, record in enumerate(records):
        paths.append(tmp_path / "eval" / f"{i}.json")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        paths[-1].write_text(json.dumps(record))
    model = tmp_path / "results/students/minilm/ner-synth/synth/L1/model"
    model.mkdir(parents=True)
    (model / "training_history.json").write_text(
        json.dumps([{"step": s, "loss": 3.0 / (1 + s)} for s in range(0, 40, 5)])
    )
    config = with_defaults(default_config)  # the report shows the whole (filled) config
    config["report"]["budgets"] = [{"name": "under 10 ms", "max_latency_ms_b1": 10}]
    build_report(paths, tmp_path / "report", config, [model])

    assert_page_renders(tmp_path / "report" / "report.html", tmp_path)
