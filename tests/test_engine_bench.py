"""``neurorack bench`` with the engine's figures (structure only: speed is never asserted)."""

from __future__ import annotations

import json
import math

import pytest

from neurorack.cli import main


def test_bench_reports_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", "--json", "--seconds", "0.1", "--repeats", "1", "--no-sinc-nsf", "--no-notes", "--engine"]) == 0
    )
    doc = json.loads(capsys.readouterr().out)
    eng = doc["engine"]
    assert eng["backend"] in ("jack (dummy server)", "null (no jackd)")
    assert eng["period"] == 128 and eng["sample_rate"] == 44100 and eng["hits"] >= 6
    for key in (
        "latency_periods_median",
        "latency_periods_max",
        "latency_ms_max",
        "callback_share",
        "render_ahead_ms_median",
        "render_ms_median",
    ):
        assert math.isfinite(eng[key]) and eng[key] >= 0, key
    assert 0 < eng["callback_share"] < 1


def test_bench_without_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["bench", "--json", "--seconds", "0.1", "--repeats", "1", "--no-sinc-nsf", "--no-notes", "--no-engine"])
        == 0
    )
    assert "engine" not in json.loads(capsys.readouterr().out)
