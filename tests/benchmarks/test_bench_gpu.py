"""The GPU throughput benchmark's logic on the CPU (the benchmark itself runs on a GPU only)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_gpu import datasheet_peak_tflops, main, measure

TINY = ["model.base_features=4", "model.depth=2"]


def test_datasheet_peaks_match_the_longest_name_first():
    assert datasheet_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert datasheet_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert datasheet_peak_tflops("NVIDIA H200") == 989.4
    assert datasheet_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert datasheet_peak_tflops("NVIDIA L40S") == 362.0
    assert datasheet_peak_tflops("NVIDIA L4") == 121.0
    assert datasheet_peak_tflops("Quadro K620") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit without a GPU")
def test_without_a_gpu_it_says_so_and_exits_cleanly(capsys):
    assert main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_measure_counts_the_flops_of_lapseg_training_and_inference():
    rows = measure(TINY, device=torch.device("cpu"), batch_size=2, patch=32, steps=1, rounds=1)
    assert [row["work"] for row in rows] == ["training", "inference"]
    assert all(row["tflops"] > 0 and row["images_per_s"] > 0 for row in rows)
