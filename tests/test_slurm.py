"""The workflow on a real one-node SLURM cluster through `profiles/slurm`: the smoke sweep goes
through `sbatch` and gives the local run's results; a cancelled distillation job resumes from
its checkpoint on retry; the dry run on the default config asks for GPUs on the GPU rules only.

A session fixture starts munged, slurmctld and slurmd on this host from a generated slurm.conf
(private ports, socket and state under a temporary folder, one fake GPU declared as GRES so GPU
jobs are scheduled as on a real cluster) and stops them by their pid files at the end. The
Debian packages come from `.ci/run`; without `slurmctld` these tests skip.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
SMOKE = ROOT / "config" / "smoke.yaml"
GPU_RULES = {
    "finetune_teacher",
    "cache_teacher_logits",
    "cache_train_logits",
    "cache_general",
    "distill_student",
}
# Quick status polling for tests; a real cluster keeps the plugin's defaults.
FAST_POLLING = [
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "1",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float = 60, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def test_dry_run_on_the_default_config_asks_gpus_for_gpu_rules_only(tmp_path):
    run = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--profile", "profiles/slurm"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["resources"]
    blocks = re.findall(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", run.stdout, re.S | re.M)
    seen = set()
    for rule, block in blocks:
        if rule == "all":
            continue
        resources = dict(re.findall(r"(\w+)=([^,\s]*)", block.split("resources:", 1)[1]))
        group = "gpu_rules" if rule in GPU_RULES else None
        group = group or ("eval_rules" if rule.startswith("evaluate") else "cpu_rules")
        if rule == "report":  # report.smk declares none: the profile's defaults apply
            group = None
        if rule in GPU_RULES:
            assert resources.get("gpu") == str(config["gpu_rules"]["gpu"]), (rule, resources)
        else:
            assert "gpu" not in resources, (rule, resources)
        if group:
            for key in ("cpus_per_task", "mem_mb", "runtime"):
                assert resources[key] == str(config[group][key]), (rule, key, resources)
        seen.add(rule)
    # the default sweep has no general-mode student, hence no cache_general job
    assert GPU_RULES - {"cache_general"} < seen and "build_corpus" in seen


def test_conda_environments_pin_what_pyproject_pins():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(d.replace(" ", "").split("==") for d in project["dependencies"] if "==" in d)
    python = project["requires-python"].removeprefix(">=")
    for path in sorted((ROOT / "envs").glob("*.yaml")):
        deps = yaml.safe_load(path.read_text())["dependencies"]
        assert f"python={python}" in deps, path
        pip = next(d["pip"] for d in deps if isinstance(d, dict))
        env_pins = dict(d.replace(" ", "").split("==") for d in pip if "==" in d)
        assert env_pins == pins, (path, env_pins, pins)
        assert "-e ../" in pip, path  # the project itself, from this checkout


def _write_conf(folder: Path, munge_socket: Path) -> Path:
    host = socket.gethostname()
    cpus = os.cpu_count() or 1
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    memory = int(mem_kb / 1024 * 0.8)
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(
        f"""ClusterName=medistill-test
SlurmctldHost={host}
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=3600
ReturnToService=2
SchedulerParameters=sched_interval=1
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd.log
GresTypes=gpu
NodeName={host} CPUs={cpus} RealMemory={memory} Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""
    )
    # A fake GPU (a plain file as its device): enough for SLURM to schedule `--gpus=1` jobs.
    (folder / "nvidia0").touch()
    (folder / "gres.conf").write_text(f"NodeName={host} Name=gpu File={folder}/nvidia0\n")
    return conf


# The jobstep plugin drops SLURM_* variables (SLURM_CONF too) before its inner `srun`, which then
# reads the default path: point it at the generated file for the session, if nothing is there.
SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _left_by_a_killed_session(conf: Path) -> bool:
    """A link into a `medistill-slurm-*` folder whose slurmctld is gone: a killed test run's."""
    if not conf.is_symlink():
        return False
    folder = conf.readlink().parent
    pid = _pid(folder / "slurmctld.pid")
    controller_alive = pid is not None and Path(f"/proc/{pid}").exists()
    return folder.name.startswith("medistill-slurm-") and not controller_alive


def start_cluster(folder: Path) -> dict[str, str]:
    """Start munged, slurmctld and slurmd; return the environment that talks to them."""
    if _left_by_a_killed_session(SYSTEM_CONF):
        SYSTEM_CONF.unlink()
    if SYSTEM_CONF.exists() or SYSTEM_CONF.is_symlink():
        raise RuntimeError(f"{SYSTEM_CONF} exists: these tests start their own one-node cluster")
    folder.chmod(0o755)  # munged runs as `munge` and must reach its socket folder
    munge_dir = folder / "munge"
    munge_dir.mkdir(mode=0o755)
    user = pwd.getpwnam("munge")
    os.chown(munge_dir, user.pw_uid, user.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    subprocess.run(
        [
            "runuser",
            "-u",
            "munge",
            "--",
            "/usr/sbin/munged",
            f"--socket={munge_socket}",
            f"--pid-file={munge_dir}/munged.pid",
            f"--log-file={munge_dir}/munged.log",
            f"--seed-file={munge_dir}/munged.seed",
        ],
        check=True,
    )
    conf = _write_conf(folder, munge_socket)
    SYSTEM_CONF.parent.mkdir(parents=True, exist_ok=True)
    SYSTEM_CONF.symlink_to(conf)
    env = os.environ | {"SLURM_CONF": str(conf)}
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, env=env)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=env)

    def node_idle():
        info = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env)
        return info.stdout.strip() == "idle"

    _wait(node_idle, "the SLURM node to become idle")
    return env


def stop_cluster(folder: Path) -> None:
    if SYSTEM_CONF.is_symlink() and SYSTEM_CONF.readlink() == folder / "slurm.conf":
        SYSTEM_CONF.unlink()
    for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
        pid = _pid(folder / pid_file)
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        try:
            _wait(lambda pid=pid: not Path(f"/proc/{pid}").exists(), pid_file, timeout=20)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm_env():
    if shutil.which("slurmctld") is None:
        pytest.skip("slurmctld is not installed (apt-get install slurm-wlm munge, as .ci/run does)")
    folder = Path(tempfile.mkdtemp(prefix="medistill-slurm-"))
    try:
        yield start_cluster(folder)
    finally:
        stop_cluster(folder)
        shutil.rmtree(folder, ignore_errors=True)


# The test node has 2 CPUs, a little memory and one (fake) GPU: the jobs must fit it. Threads
# equal the local run's (--cores 2) so results compare exactly.
FIT_NODE = """
resources:
  gpu_rules: {gpu: 1, cpus_per_task: 2, mem_mb: 3000, runtime: 30}
  eval_rules: {cpus_per_task: 2, mem_mb: 3000, runtime: 30}
  cpu_rules: {cpus_per_task: 1, mem_mb: 2000, runtime: 30}
"""
# The SLURM sweep covers each kind of job (a trained, a compressed and a two-stage student)
# without repeating the whole smoke grid (nor its baselines) through sbatch's polling.
SLURM_SIZES = """
sweep:
  {task: ner-synth, teachers: [minilm-l6], corpora: [synth], sizes: [L1-int8, G1], baselines: false}
"""
# Long enough to cancel the distillation job between two checkpoints; one seed, no baseline.
LONG_DISTILL = """
seeds: 1
sweep: {task: ner-synth, teachers: [minilm-l6], corpora: [synth], sizes: [L1], baselines: false}
distill: {steps: 150, batch_size: 8, learning_rate: 3.0e-4, checkpoint_every: 10, eval_every: 50}
"""


def _env(extra: dict | None = None) -> dict:
    env = os.environ | {"HF_HUB_OFFLINE": "1"} | (extra or {})
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _snakemake_args(workdir: Path, *overrides: str) -> list[str]:
    configs = [str(SMOKE)]
    for i, text in enumerate(overrides):
        path = workdir / f"override-{i}.yaml"
        path.write_text(text)
        configs.append(str(path))
    return [*SNAKEMAKE, "--directory", str(workdir), "--configfile", *configs]


def slurm_run(workdir: Path, env: dict, *overrides: str, extra=()) -> subprocess.Popen:
    args = _snakemake_args(workdir, FIT_NODE, *overrides)
    args += ["--profile", str(ROOT / "profiles" / "slurm"), *FAST_POLLING]
    args += ["--slurm-keep-successful-logs", *extra]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(env)
    )


def local_run(workdir: Path, *overrides: str, extra=()) -> subprocess.Popen:
    args = [*_snakemake_args(workdir, *overrides), "--cores", "2", *extra]
    return subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
    )


def finish(process: subprocess.Popen, timeout: float = 2400) -> str:
    # A guard against a hung cluster, not a speed check: on a 2-core AVX2-only machine the
    # SLURM smoke sweep (16 jobs, each started by sbatch) took over 15 minutes.
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output[-6000:]
    return output


def slurm_jobs(env: dict, workdir: Path) -> list[dict]:
    """Every SLURM job submitted from `workdir` (finished ones stay listed: MinJobAge)."""
    listing = subprocess.run(
        ["scontrol", "-o", "show", "job"], capture_output=True, text=True, env=env, check=True
    ).stdout
    jobs = []
    for line in listing.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if fields.get("WorkDir") == str(workdir):
            match = re.match(r"rule_(\w+?)(_wildcards_.*)?$", fields.get("Comment", ""))
            fields["rule"] = match.group(1) if match else None
            jobs.append(fields)
    return sorted(jobs, key=lambda job: int(job["JobId"]))


def job_counts(output: str) -> dict[str, int]:
    """The "Job stats" table Snakemake prints before running: {rule: jobs}."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    rows = (line.split() for line in table.splitlines()[3:])
    return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[0] != "total"}


def results_table(workdir: Path) -> pd.DataFrame:
    """The report's F1 and size columns (latency, and what derives from it, varies run to run)."""
    table = pd.read_csv(workdir / "results" / "report" / "tradeoff.csv")
    identity = ["teacher", "corpus", "size", "task", "role"]
    metrics = [
        c
        for c in table.columns
        if ("f1" in c or "param" in c)
        and "latency" not in c
        and not c.startswith("on_front")
        and "baseline" not in c
    ]  # Pareto flags and baseline columns depend on which models the table holds
    return table[identity + metrics].sort_values(identity).reset_index(drop=True)


def evaluations(workdir: Path) -> dict[str, dict]:
    """F1 scores and parameter counts of every evaluation JSON (not the comparison with a
    baseline, which only sweeps with baselines have)."""
    found = {}
    for path in sorted((workdir / "results" / "eval").rglob("*.json")):
        if path.name.endswith(".counts.json"):  # per-sentence counts, not scores
            continue
        flat = pd.json_normalize(json.loads(path.read_text())).iloc[0].to_dict()
        keep = {
            k: v for k, v in flat.items() if ("f1" in k or "param" in k) and "baseline" not in k
        }
        found[str(path.relative_to(workdir))] = keep
    return found


def test_smoke_sweep_runs_through_sbatch_with_the_local_results(slurm_env, smoke_sweep, tmp_path):
    started = time.monotonic()
    output = finish(slurm_run(tmp_path, slurm_env, SLURM_SIZES))
    elapsed = time.monotonic() - started

    jobs = slurm_jobs(slurm_env, tmp_path)
    expected = {rule: n for rule, n in job_counts(output).items() if rule != "all"}
    submitted = {rule: sum(job["rule"] == rule for job in jobs) for rule in expected}
    assert submitted == expected, (submitted, expected)
    assert {job["JobState"] for job in jobs} == {"COMPLETED"}
    for job in jobs:  # GPUs are asked for by the GPU rules only
        assert (job.get("TresPerJob") == "gres:gpu:1") == (job["rule"] in GPU_RULES), job
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == len(jobs)

    on_slurm = results_table(tmp_path)
    local = results_table(smoke_sweep)
    same_models = local["size"].isin(on_slurm["size"]) & local["corpus"].isin(on_slurm["corpus"])
    local = local[same_models].reset_index(drop=True)
    # the int8 student brings the teacher in int8 (same-runtime speedups)
    assert set(on_slurm["size"]) == {"teacher", "teacher-int8", "L1-int8", "G1"}
    pd.testing.assert_frame_equal(on_slurm, local[on_slurm.columns], check_exact=True)
    slurm_evaluations = evaluations(tmp_path)
    local_evaluations = evaluations(smoke_sweep)
    assert slurm_evaluations == {k: local_evaluations[k] for k in slurm_evaluations}
    print(f"SLURM smoke sweep: {len(jobs)} jobs in {elapsed:.0f}s")


def _copy_sweep(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    shutil.rmtree(target / "results" / "checkpoints" / "students", ignore_errors=True)
    return target


def test_cancelled_distillation_resumes_from_its_checkpoint(slurm_env, smoke_sweep, tmp_path):
    """scancel the distillation job mid-run: Snakemake resubmits it (profile retries), the new
    job resumes from the last checkpoint, and the sweep ends with an uninterrupted run's results."""
    cluster = _copy_sweep(smoke_sweep, tmp_path / "slurm")
    reference = _copy_sweep(smoke_sweep, tmp_path / "local")
    rerun = ("--forcerun", "distill_student")
    started = time.monotonic()
    on_slurm = slurm_run(cluster, slurm_env, LONG_DISTILL, extra=rerun)
    checkpoint = cluster / "results/checkpoints/students/minilm-l6/ner-synth/synth/L1-seed13.pt"

    def running_distillation():
        jobs = slurm_jobs(slurm_env, cluster)
        running = [j for j in jobs if j["rule"] == "distill_student" and j["JobState"] == "RUNNING"]
        return running[0]["JobId"] if running and checkpoint.exists() else None

    local = None
    try:
        job_id = _wait(running_distillation, "a distillation checkpoint", timeout=600, every=0.2)
        subprocess.run(["scancel", job_id], check=True, env=slurm_env)
        local = local_run(reference, LONG_DISTILL, extra=rerun)  # the uninterrupted reference
        output = finish(on_slurm)
        elapsed = time.monotonic() - started
        finish(local)
    finally:  # an interrupted test leaves no workflow running
        for process in (on_slurm, local):
            if process is not None and process.poll() is None:
                process.kill()

    distillations = [j for j in slurm_jobs(slurm_env, cluster) if j["rule"] == "distill_student"]
    assert [j["JobState"] for j in distillations] == ["CANCELLED", "COMPLETED"], output[-4000:]
    log = (cluster / "results/logs/distill_student/minilm-l6/ner-synth/synth/L1.log").read_text()
    resumed = re.search(r"resuming distilling minilm-l6/synth/L1 \(seed 13\) from step (\d+)", log)
    assert resumed and 0 < int(resumed.group(1)) < 150, log[-3000:]
    pd.testing.assert_frame_equal(
        results_table(cluster), results_table(reference), check_exact=True
    )
    assert evaluations(cluster) == evaluations(reference)
    print(f"cancel + resume on SLURM: {elapsed:.0f}s, resumed at step {resumed.group(1)}")


if __name__ == "__main__":  # manual check: python tests/test_slurm.py
    folder = Path(tempfile.mkdtemp(prefix="medistill-slurm-"))
    print(folder)
    env = start_cluster(folder)
    print(subprocess.run(["sinfo"], capture_output=True, text=True, env=env).stdout)
    print(f"export SLURM_CONF={env['SLURM_CONF']}")
