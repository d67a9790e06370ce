"""Agreement of the automatic output-level grader with the hand labels in tests/eval/data.

Prints accuracy and the confusion matrix (rows: hand label, columns: grader) for the grader
without a reference LM (text statistics + MiniLM relevance), and with --reference for the grader
that also scores fluency by SmolLM2-135M's log-likelihood. --features FILE writes every
measurement next to its label (for calibrating the thresholds in sfn/eval/grade.py).

    python benchmarks/grader_agreement.py [--reference] [--features benchmarks/work/features.csv]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

LABELS = Path(__file__).resolve().parents[1] / "tests/eval/data/grader_labels.jsonl"


def load_labels(path: Path = LABELS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def agreement(labels: list[dict], predicted: list[str]) -> tuple[float, dict[str, dict[str, int]]]:
    """(accuracy, confusion[label][prediction]) over levels I-IV."""
    from sfn.eval.grade import LEVELS

    confusion = {label: {prediction: 0 for prediction in LEVELS} for label in LEVELS}
    for row, prediction in zip(labels, predicted):
        confusion[row["level"]][prediction] += 1
    hits = sum(confusion[level][level] for level in LEVELS)
    return hits / len(labels), confusion


def format_confusion(confusion: dict[str, dict[str, int]]) -> str:
    levels = list(confusion)
    lines = ["label \\ grader " + "".join(f"{level:>6}" for level in levels)]
    for label in levels:
        lines.append(f"{label:<15}" + "".join(f"{confusion[label][p]:>6}" for p in levels))
    return "\n".join(lines)


def grade_all(grader, labels: list[dict]) -> list:
    return [grader.grade(row["prompt"], row["output"], row.get("reference")) for row in labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", default=str(LABELS))
    parser.add_argument("--reference", action="store_true", help="also grade with SmolLM2-135M as the reference LM")
    parser.add_argument("--features", help="write the measurements and labels to this CSV")
    args = parser.parse_args()

    import pandas as pd

    from sfn.eval.grade import Grader

    labels = load_labels(Path(args.labels))
    graders = {"text statistics + MiniLM": Grader()}
    if args.reference:
        from sfn.io.load_model import load_model
        from sfn.io.smollm2 import smollm2_gguf

        reference = load_model(smollm2_gguf())
        graders["+ SmolLM2-135M log-likelihood"] = Grader(reference=reference)
    print(f"{len(labels)} labelled outputs: " + ", ".join(
        f"{level} {sum(row['level'] == level for row in labels)}" for level in ("I", "II", "III", "IV")))
    frames = []
    for name, grader in graders.items():
        grades = grade_all(grader, labels)
        accuracy, confusion = agreement(labels, [g.level for g in grades])
        print(f"\n{name}: accuracy {accuracy:.3f}\n{format_confusion(confusion)}")
        frames.append(pd.DataFrame([{"grader": name, "label": row["level"], "predicted": g.level, "variant": row.get("variant"),
                                     **{k: v for k, v in g.evidence.items()}} for row, g in zip(labels, grades)]))
    if args.features:
        Path(args.features).parent.mkdir(parents=True, exist_ok=True)
        pd.concat(frames).to_csv(args.features, index=False)


if __name__ == "__main__":
    main()
