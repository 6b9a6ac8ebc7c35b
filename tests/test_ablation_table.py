"""scripts/ablation_table.py: pipeline runs' metrics beside the paper's ablation rows."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablation_table.py"


def fake_run(root: Path, name: str, fid: float, garment: float) -> Path:
    run = root / name
    (run / "eval").mkdir(parents=True)
    metrics = {"fid": {"value": fid}, "is": {"mean": 6.5, "std": 0.1}, "map": {"mAP": 0.5},
               "semantic": {"all": {"garment_accuracy": garment, "colour_accuracy": 1.0}}}
    (run / "eval" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    return run


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


def test_rows_seed_means_and_the_papers_numbers(tmp_path):
    a, b = fake_run(tmp_path, "s0", 40.0, 0.8), fake_run(tmp_path, "s1", 50.0, 0.9)
    c = fake_run(tmp_path, "aug", 44.0, 0.85)
    out = run_script(f"full={a},{b}", f"augment-shift4={c}")
    assert out.returncode == 0, out.stderr
    rows = out.stdout.strip().splitlines()
    assert len(rows) == 4
    full, aug = rows[2].split(" | "), rows[3].split(" | ")
    assert full[0] == "| full (2 seeds)" and full[1] == "45.0 (40.0, 50.0)" and full[3] == "50.0 (50.0, 50.0)"
    assert full[4] == "0.850 (0.800, 0.900)"
    assert full[6] == "9.04 / 14.50 / 4.29" and full[7].startswith("13.40 / 48.64 / 3.55")
    assert aug[1] == "44.0" and aug[6] == "-"


def test_a_run_without_metrics_is_named(tmp_path):
    out = run_script(f"no-rs={tmp_path / 'missing'}")
    assert out.returncode != 0 and "missing/eval/metrics.json: no such file" in out.stderr
