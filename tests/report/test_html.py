"""Tests of the HTML run report, including a headless-Chromium rendering check."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from lapseg.config import LapsegConfig, UNetConfig, config_to_dict, dump_config
from lapseg.data.split import write_split
from lapseg.errors import LapsegInputError
from lapseg.io.images import write_tiff
from lapseg.metrics.evaluate import evaluate_folders
from lapseg.models.checkpoint import save_checkpoint
from lapseg.models.unet import UNet
from lapseg.report.html import build_report

N_IMAGES = 4


def _write_run(root: Path, *, checkpoint: bool = False) -> dict[str, Path]:
    """A tiny run folder, predictions, ground truth and an evaluation, written by hand."""
    rng = np.random.default_rng(0)
    run, images, truth, pred = (root / n for n in ("run", "images", "truth", "pred"))
    for folder in (run, images, truth):
        folder.mkdir(parents=True)
    yy, xx = np.mgrid[:48, :64]
    for i in range(N_IMAGES):
        mask = ((yy - 20 - i) ** 2 + (xx - 30) ** 2 < (8 + 2 * i) ** 2).astype(np.uint8)
        write_tiff(
            images / f"img{i}.tif",
            (100 + 60 * mask + rng.normal(0, 5, mask.shape)).astype(np.float32),
        )
        write_tiff(truth / f"img{i}.tif", mask * 255)
        prob = np.clip(mask * 0.9 + rng.normal(0.05, 0.1, mask.shape), 0, 1).astype(np.float32)
        predicted = np.roll(mask, i, axis=1)  # worse with i
        write_tiff(pred / "masks" / f"img{i}.tif", predicted * 255)
        write_tiff(pred / "probabilities" / f"img{i}.tif", prob)
    config = LapsegConfig()
    (run / "config.yaml").write_text(dump_config(config), encoding="utf-8")
    write_split(run / "split.json", {"train": ["a", "b", "c"], "val": ["d"], "test": ["e", "f"]})
    (run / "run.json").write_text(
        json.dumps(
            {
                "training_seconds": 12.5,
                "best_epoch": 3,
                "environment": {"python": "3.11", "device": "cpu"},
            }
        )
    )
    with (run / "history.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "val_loss", "val_dice", "stage"])
        for epoch in range(1, 7):
            writer.writerow([epoch, 1 / epoch, 1.2 / epoch, 1 - 1 / (epoch + 1), epoch // 4])
    evaluate_folders(pred, truth, out_dir=root / "eval")
    (root / "eval" / "instances_summary.json").write_text(
        json.dumps({"f1": 0.75, "precision": 0.8, "recall": 0.7, "mean_matched_iou": 0.81})
    )
    if checkpoint:
        model_config = UNetConfig(depth=2, base_features=4)
        torch.manual_seed(0)
        model = UNet(model_config)
        full = config_to_dict(config)
        full["model"] = model_config.to_dict()
        save_checkpoint(
            run / "best.pt",
            {
                "config": full,
                "model_state": model.state_dict(),
                "normalization": {"mode": "percentile"},
                "threshold": 0.5,
            },
        )
    return {"run": run, "images": images, "truth": truth, "pred": pred, "eval": root / "eval"}


def _build(paths: dict[str, Path], **kw: object) -> str:
    path = build_report(
        paths["run"],
        evaluation_dir=paths["eval"],
        predictions_dir=paths["pred"],
        images_dir=paths["images"],
        truth_dir=paths["truth"],
        **kw,
    )  # type: ignore[arg-type]
    assert path == paths["run"] / "report.html"
    return path.read_text(encoding="utf-8")


def _values(page: str, table_id: str) -> dict[str, list[float]]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', page, re.S)
    assert table is not None, table_id
    out = {}
    for row in re.findall(r"<tr><th>(.*?)</th>(.*?)</tr>", table.group(1)):
        values = [float(v) for v in re.findall(r'data-value="([^"]+)"', row[1])]
        if values:  # the header row has none
            out[row[0]] = values
    return out


def test_report_sections_and_numbers_match_json(tmp_path: Path) -> None:
    paths = _write_run(tmp_path)
    page = _build(paths)
    for section in (
        "config",
        "data",
        "environment",
        "curves",
        "metrics",
        "boxplots",
        "ranking",
        "overlays",
    ):
        assert f'<section id="{section}">' in page
    assert "feature-maps" not in page and 'id="omitted"' not in page
    summary = json.loads((paths["eval"] / "summary.json").read_text())
    table = _values(page, "pixel-metrics")
    assert set(table) == {k for k, v in summary["pooled"].items() if isinstance(v, int | float)}
    for key, (pooled, mean, std) in table.items():
        assert (pooled, mean, std) == (
            summary["pooled"][key],
            summary["mean"][key],
            summary["std"][key],
        )
    assert _values(page, "instance-metrics") == {
        "f1": [0.75],
        "precision": [0.8],
        "recall": [0.7],
        "mean_matched_iou": [0.81],
    }
    assert _values(page, "split-counts") == {"train": [3], "val": [1], "test": [2]}
    assert _values(page, "run-info")["training_seconds"] == [12.5]
    # ranking: img0 (unshifted prediction) is the best, img3 the worst
    worst, best = _values(page, "worst"), _values(page, "best")
    assert next(iter(best)) == "img0" and next(iter(worst)) == "img3"
    with (paths["eval"] / "per_image.csv").open(newline="") as handle:
        per_image = {r["name"]: r["dice"] for r in csv.DictReader(handle)}
    assert best["img0"] == [float(per_image["img0"])]
    # 4 images x (input, truth, probability, overlay): thumbnails and full-size lightboxes
    assert page.count('class="overlay-row"') == N_IMAGES
    assert page.count('class="thumb"') == 4 * N_IMAGES
    assert page.count('class="lightbox"') == 4 * N_IMAGES
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_missing_inputs_omit_sections(tmp_path: Path) -> None:
    paths = _write_run(tmp_path)
    page = build_report(paths["run"], max_overlays=2).read_text()
    assert '<section id="curves">' in page and '<section id="config">' in page
    for section in ("metrics", "overlays", "boxplots", "ranking"):
        assert f'<section id="{section}">' not in page
    assert '<section id="omitted">' in page and "no evaluation summary.json" in page


def test_max_overlays_and_feature_maps(tmp_path: Path) -> None:
    paths = _write_run(tmp_path, checkpoint=True)
    page = _build(paths, max_overlays=2, feature_maps=True)
    assert page.count('class="overlay-row"') == 2
    # the sample spans the Dice ranking: worst and best images are both shown
    assert 'data-image="img0"' in page and 'data-image="img3"' in page
    assert '<section id="feature-maps">' in page and 'alt="feature maps"' in page


def test_bad_input(tmp_path: Path) -> None:
    with pytest.raises(LapsegInputError, match="does not exist"):
        build_report(tmp_path / "nope")
    with pytest.raises(LapsegInputError, match="max_overlays"):
        build_report(tmp_path, max_overlays=-1)
    with pytest.raises(LapsegInputError, match="does not exist"):
        build_report(tmp_path, evaluation_dir=tmp_path / "missing")


def test_run_text_is_escaped(tmp_path: Path) -> None:
    paths = _write_run(tmp_path)
    (paths["run"] / "config.yaml").write_text("note: <script>alert('x')</script> & more\n")
    (paths["run"] / "run.json").write_text(json.dumps({"<b>key</b>": "<i>value</i>"}))
    page = build_report(paths["run"]).read_text()
    assert "<script" not in page and "<b>" not in page and "<i>" not in page
    assert "note: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page
    assert "<tr><th>&lt;b&gt;key&lt;/b&gt;</th><td>&lt;i&gt;value&lt;/i&gt;</td></tr>" in page


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]
# Appended to a copy of the report: records script errors and images that failed to decode.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const broken = [...document.images].filter(i => !i.complete || i.naturalWidth === 0).length;
  const out = document.createElement('div'); out.id = 'probe';
  out.textContent = `images=${document.images.length} broken=${broken} errors=${window.__errors.length}`;
  document.body.appendChild(out);
});
</script>"""


def _chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    paths = _write_run(tmp_path)
    report = build_report(
        paths["run"],
        evaluation_dir=paths["eval"],
        predictions_dir=paths["pred"],
        images_dir=paths["images"],
        truth_dir=paths["truth"],
    )
    shot = tmp_path / "report.png"  # look at it: pytest --basetemp=DIR keeps it
    result = _chromium(
        [f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri()], tmp_path
    )
    assert shot.is_file() and shot.stat().st_size > 10_000, result.stderr[-2000:]
    assert "ERROR:CONSOLE" not in result.stderr and "Uncaught" not in result.stderr
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", _PROBE + "</body>"))
    result = _chromium(["--dump-dom", "--virtual-time-budget=5000", probed.as_uri()], tmp_path)
    dom = result.stdout
    for section in ("config", "curves", "metrics", "overlays", "ranking"):
        assert f'id="{section}"' in dom
    probe = re.search(r'<div id="probe">images=(\d+) broken=(\d+) errors=(\d+)</div>', dom)
    assert probe is not None, result.stderr[-2000:]
    n_images, broken, errors = map(int, probe.groups())
    assert n_images == 2 + 8 * N_IMAGES  # curves, boxplots, then thumbnail + full size
    assert (broken, errors) == (0, 0)
    assert "Uncaught" not in result.stderr
