"""Energy accounting: real codecarbon measurements around a short CPU workload (offline, about a
second each), the country setting, the off switch, and a tracker failure that costs only a
warning."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from medistill.core import energy
from medistill.core.energy import track_energy


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(i * i for i in range(1000))


def no_network(*args, **kwargs):
    raise AssertionError(f"network call: {args}")


def test_measures_a_stage_offline_and_writes_nothing(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.chdir(tmp_path)
    # A stray local config asking for a CSV and another grid must not be obeyed.
    stray = tmp_path / ".codecarbon.config"
    stray.write_text(
        "[codecarbon]\noutput_methods = csv\nsave_to_file = true\ncountry_iso_code = USA\n"
    )
    with track_energy({}, "distill") as result:
        begin = time.perf_counter()
        busy(0.5)
        wall = time.perf_counter() - begin
    assert set(result) == {"stage", "country", "duration_s", "energy_kwh", "co2_kg"}
    assert result["stage"] == "distill"
    assert result["country"] == "FRA"
    assert result["energy_kwh"] > 0
    assert result["co2_kg"] > 0
    assert wall <= result["duration_s"] < wall + 0.05
    assert list(tmp_path.iterdir()) == [stray]
    assert "codecarbon" not in capfd.readouterr().err  # its notes are silenced


def test_country_sets_the_grid_intensity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    intensity = {}
    for country in ("FRA", "DEU"):
        config = {"energy": {"enabled": True, "country": country}}
        with track_energy(config, "evaluate") as result:
            busy(0.2)
        assert result["country"] == country
        intensity[country] = result["co2_kg"] / result["energy_kwh"]
    # France's low-carbon grid: about 56 g/kWh in codecarbon's table, Germany several times more.
    assert 0.01 < intensity["FRA"] < 0.1
    assert intensity["DEU"] > 2 * intensity["FRA"]


def test_disabled_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with track_energy({"energy": {"enabled": False}}, "distill") as result:
        busy(0.01)
    assert result == {}
    assert list(tmp_path.iterdir()) == []


def test_tracker_failure_costs_one_warning(monkeypatch, caplog):
    def broken(country):
        raise PermissionError("no RAPL access")

    monkeypatch.setattr(energy, "_start_tracker", broken)
    with caplog.at_level(logging.WARNING, logger="medistill"):
        with track_energy({"energy": {"country": "BEL"}}, "cache") as result:
            busy(0.05)
    assert set(result) == {"stage", "country", "duration_s"}
    assert result["country"] == "BEL" and result["duration_s"] >= 0.05
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no RAPL access" in warnings[0].getMessage()


def test_body_errors_propagate_and_the_tracker_stops(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError), track_energy({}, "distill") as result:
        raise ValueError("training diverged")
    assert result["energy_kwh"] >= 0 and "duration_s" in result
