"""scripts/reply_content.py: how much of the question's content the spoken replies carry (issue 20)."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "reply_content.py"


def fake_eval(root: Path, replies: list[str]) -> Path:
    root.mkdir()
    ref = "Yes, Maria sold the car last night."
    rows = [{"reference": ref, "reply_text": r, "resynth_text": "Yes, Maria sold the card at night.",
             "real_text": ref} for r in replies]
    (root / "replies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_rows_count_the_reference_content_words_heard_in_each_reply(tmp_path):
    a = fake_eval(tmp_path / "s0", ["Yes, Maria will sell the car.", "The dog found the keys."])  # 3/4 and 0/4
    b = fake_eval(tmp_path / "s1", ["yes, maria sold the car last night", "Yes, Peter lost the car."])  # 4/4, 1/4
    out = subprocess.run([sys.executable, str(SCRIPT), f"perceiver={a},{b}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    row = next(x for x in lines if x.startswith("| perceiver |"))
    # seed means 37.5 % and 62.5 % of content words; "yes ..." in 50 % and 100 % of replies
    assert "| 50.0 ± " in row and "| 75.0 ± " in row, row
    assert any(x.startswith("| *ceiling: reference reply resynthesised* | 75.0 % | 100.0 % |") for x in lines)
    assert any(x.startswith("| *ceiling: reference reply, real recording* | 100.0 % | 100.0 % |") for x in lines)
    bad = subprocess.run([sys.executable, str(SCRIPT), "perceiver"], capture_output=True, text=True)
    assert bad.returncode != 0 and "expected NAME=DIR" in bad.stderr
