"""Print the markdown table of docs/experiments.md from runs' metrics.json files.

    python scripts/experiments_table.py runs/ablations/* runs/ferplus_multitask_64
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml


def main(paths: list[str]) -> None:
    print("| run | input | head | targets | aug | backbone | epochs run | best valid acc | "
          "test acc | test macro-F1 | test ECE | s/epoch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for p in map(Path, paths):
        if not (p / "metrics.json").exists():
            continue
        m = json.loads((p / "metrics.json").read_text())
        c = yaml.safe_load((p / "config.yaml").read_text())
        h = m["history"]
        test = m.get("test", {})
        print(f"| {c['name']} | {c['model']['input_size']} | {c['model']['head']} | "
              f"{c['train']['targets']} | {'on' if c['augment']['enabled'] else 'off'} | "
              f"{'frozen' if c['model']['freeze_backbone'] else 'fine-tuned'} | {len(h)} | "
              f"{max(r['valid_accuracy'] for r in h):.4f} | "
              f"{test.get('accuracy', float('nan')):.4f} | "
              f"{test.get('macro_f1', float('nan')):.4f} | {test.get('ece', float('nan')):.4f} | "
              f"{sum(r['seconds'] for r in h) / len(h):.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
