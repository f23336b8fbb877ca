"""Energy and CO2 of one workflow stage, measured offline by codecarbon.

    with track_energy(config, "distill") as energy:
        train()
    energy  # {"stage", "country", "duration_s", "energy_kwh", "co2_kg"}

The figures are estimates. codecarbon reads the CPU's RAPL energy counters where the kernel lets
it (bare-metal Linux with /sys/class/powercap readable), and NVIDIA GPUs through NVML. Where
RAPL is not readable (containers, most clusters without root), it estimates CPU power from the
CPU's TDP (its own table, else 4 W per thread) scaled by the CPU time the job used, and RAM
power from a per-GB model. CO2 is the energy times the average carbon intensity of the
country's grid (codecarbon's bundled table: about 56 g/kWh for France, 475 for the world
average an unknown code falls back to): no network call is made.

codecarbon's "process" mode scales the TDP estimate and RAM to this process and its children,
so jobs that Snakemake runs side by side do not each count the whole machine; RAPL and NVML
still count whole devices (the visible GPUs: CUDA_VISIBLE_DEVICES). Power calibration knobs
(``force_cpu_power``, ``force_ram_power``, ``pue``, ``gpu_ids``) may still be set in
``~/.codecarbon.config`` or ``CODECARBON_*`` variables; everything that decides where results
go or which grid is used is fixed here.

A tracker that fails to start or stop never fails the job: one warning, and the stage gets its
wall time only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

from medistill.core.schema import with_schema_defaults

log = logging.getLogger("medistill")


def _start_tracker(country: str):
    # Imported here so that a broken install costs a warning, not the import of this module.
    from codecarbon import OfflineEmissionsTracker

    # Importing codecarbon sets its logger to INFO; its per-stage notes (unknown CPU model, TDP
    # fallback) are documented above, so only its errors are shown.
    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    tracker = OfflineEmissionsTracker(
        country_iso_code=country,
        # Explicit values win over a stray .codecarbon.config in the cwd or $HOME.
        region=None,
        cloud_provider=None,
        cloud_region=None,
        force_carbon_intensity_g_co2e_kwh=None,
        output_methods=[],  # no emissions.csv (the modern form of save_to_file=False)
        emissions_endpoint=None,
        tracking_mode="process",
        # False would take a lock file in /tmp and replace the SIGINT/SIGTERM handlers.
        allow_multiple_runs=True,
        log_level="error",
    )
    tracker.start()
    return tracker


@contextmanager
def track_energy(config: dict, stage: str) -> Iterator[dict]:
    """Measure the body; on exit the yielded dict holds ``stage``, ``country`` (ISO 3166-1
    alpha-3), ``duration_s`` (wall time of the body), ``energy_kwh`` and ``co2_kg``; the last two
    are missing if codecarbon could not measure. ``energy.enabled: false`` yields ``{}``."""
    settings = with_schema_defaults(config.get("energy", {}), "energy")
    if not settings["enabled"]:
        yield {}
        return
    result = {"stage": stage, "country": settings["country"]}
    tracker, failure = None, None
    try:
        tracker = _start_tracker(result["country"])
    except Exception as error:  # codecarbon swallows most of its own errors; this is the rest
        failure = error
    start = time.perf_counter()
    try:
        yield result
    finally:
        result["duration_s"] = time.perf_counter() - start
        if tracker is not None:
            try:
                tracker.stop()
            except Exception as error:
                failure = error
            # start() and stop() log and swallow their own exceptions, leaving no data.
            data = getattr(tracker, "final_emissions_data", None)
            if data is not None:
                result["energy_kwh"] = float(data.energy_consumed)
                result["co2_kg"] = float(data.emissions)
        if "energy_kwh" not in result:
            log.warning(
                "energy: codecarbon could not measure stage %s (%s); wall time only",
                stage,
                failure or "no data",
            )
