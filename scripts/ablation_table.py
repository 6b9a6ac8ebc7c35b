"""The S2IGAN ablation table (issue 16): spoken-fashion pipeline runs beside the paper's CUB and Oxford rows.

    python scripts/ablation_table.py full=/work/runs/sf-full,/work/runs/ablations/full-seed1 \
        no-dense=/work/runs/ablations/no-dense no-rs=/work/runs/ablations/no-rs \
        end-to-end=/work/runs/ablations/end-to-end sen-no-distinctive=/work/runs/ablations/sen-no-distinctive

Each argument is ROW=comma-separated run folders of `speechvision pipeline` (one per seed), each with its
``eval/metrics.json``. Rows named like the paper's (full, no-dense, no-rs, no-sen, end-to-end,
sen-no-distinctive) get the paper's numbers beside them; any other name (e.g. augment-shift4) gets dashes.
Over several seeds a cell is the mean with the per-seed values in brackets.
"""

import sys
from pathlib import Path

from speechvision.s2igan.train_all import headline_metrics

# S2IGAN (Wang et al., Interspeech 2020), Table 1: mAP / FID / IS on CUB and Oxford-102 (256 px).
PAPER = {
    "full": ((9.04, 14.50, 4.29), (13.40, 48.64, 3.55)),
    "no-dense": ((8.66, 17.58, 4.19), (13.13, 64.37, 3.68)),
    "no-rs": ((8.54, 15.59, 4.14), (12.86, 53.24, 3.70)),
    "no-sen": ((2.91, 19.56, 3.49), (7.38, 67.60, 2.77)),
    "end-to-end": ((7.38, 21.54, 4.29), (12.47, 51.88, 3.55)),
    "sen-no-distinctive": ((6.80, 16.66, 4.19), (10.03, 69.47, 3.35)),
}
COLUMNS = (("fid", "FID", 1, 1.0), ("is", "IS", 2, 1.0), ("map", "mAP (%)", 1, 100.0),
           ("garment", "garment", 3, 1.0), ("colour", "colour", 3, 1.0))


def cell(values: list, digits: int, scale: float) -> str:
    """One value, or the mean of several with each in brackets; "-" where a run lacks the metric."""
    if any(v is None for v in values):
        return "-"
    vs = [v * scale for v in values]
    mean = f"{sum(vs) / len(vs):.{digits}f}"
    return mean if len(vs) == 1 else f"{mean} ({', '.join(f'{v:.{digits}f}' for v in vs)})"


def paper_cell(name: str, dataset: int) -> str:
    row = PAPER.get(name)
    return "-" if row is None else " / ".join(f"{v:.2f}" for v in row[dataset])


def table(groups: dict[str, list[dict]]) -> str:
    head = ["row", *(c[1] for c in COLUMNS), "paper CUB mAP / FID / IS", "paper Oxford mAP / FID / IS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, runs in groups.items():
        cells = [cell([m[key] for m in runs], digits, scale) for key, _, digits, scale in COLUMNS]
        lines.append("| " + " | ".join([f"{name} ({len(runs)} seed{'s' * (len(runs) > 1)})", *cells,
                                        paper_cell(name, 0), paper_cell(name, 1)]) + " |")
    return "\n".join(lines)


def parse(args: list[str]) -> dict[str, list[dict]]:
    groups = {}
    for arg in args:
        name, _, dirs = arg.partition("=")
        if not name or not dirs:
            raise SystemExit(f"{arg}: expected ROW=RUN[,RUN...]")
        runs = []
        for d in dirs.split(","):
            path = Path(d) / "eval" / "metrics.json"
            if not path.is_file():
                raise SystemExit(f"{path}: no such file (is {d} a finished `speechvision pipeline` run?)")
            runs.append(headline_metrics(path))
        groups[name] = runs
    return groups


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.strip().splitlines()[0] + "\nusage: python scripts/ablation_table.py ROW=RUN[,RUN...] ...")
    print(table(parse(sys.argv[1:])))


if __name__ == "__main__":
    main()
