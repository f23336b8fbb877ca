"""The README's commands work from a fresh clone: every `snakemake` command it shows that names
a config is dry-run (its config validated and its jobs planned), and every page the README and
the docs link to exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from test_workflow import snakemake

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _fenced(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.MULTILINE | re.DOTALL)


def _config_sets() -> list[tuple[str, ...]]:
    """The config files of each `snakemake` command of the README's bash blocks that names
    some (continuation lines joined, comments dropped, `&&` chains split), each set once."""
    sets = []
    for block in _fenced("bash"):
        text = re.sub(r"\\\n\s*", " ", block)
        for line in text.splitlines():
            line = line.split("#", 1)[0]
            for part in line.split("&&"):
                words = shlex.split(part)
                if words[:1] == ["snakemake"] and "--configfile" in words:
                    sets.append(_config_files(words))
    return list(dict.fromkeys(sets))


def _config_files(words: list[str]) -> tuple[str, ...]:
    start = words.index("--configfile") + 1
    files = []
    for word in words[start:]:
        if word.startswith("-"):
            break
        files.append(word)
    return tuple(files)


CONFIG_SETS = _config_sets()


def test_the_readme_shows_config_commands():
    names = {name for files in CONFIG_SETS for name in files}
    assert {"config/e3c/base.yaml", "config/generative.yaml", "my-sweep.yaml"} <= names


@pytest.mark.parametrize("files", CONFIG_SETS, ids=" ".join)
def test_a_readme_command_plans_its_sweep(files, tmp_path):
    """Dry-run in a working directory beside the shared data, as a clone beside it would be;
    the README's own `my-sweep.yaml` is written from its YAML block. Executor options (profiles,
    resources with placeholders) are the executor's business, not the plan's: left out."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "shared").symlink_to(ROOT.parent / "shared")
    (sweep,) = [b for b in _fenced("yaml") if b.startswith("# my-sweep.yaml")]
    (workdir / "my-sweep.yaml").write_text(sweep)
    configs = [str(workdir / f if f == "my-sweep.yaml" else ROOT / f) for f in files]
    run = snakemake(workdir, "-n", "--cores", "2", "--configfile", *configs)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Job stats:" in run.stdout


def test_every_page_the_docs_link_to_exists():
    pages = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", *(ROOT / "docs").rglob("*.md")]
    broken = []
    for page in pages:
        links = re.findall(r"\]\(([^)#]+)\)", page.read_text(encoding="utf-8"))
        broken += [(page.name, link) for link in links if not (page.parent / link).exists()]
    assert len(pages) > 5
    assert broken == []
