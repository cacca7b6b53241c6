#!/usr/bin/python3
"""The seed document's memory table, made by `fewcl plan` (issue 6): ResNet-34 at 224x224,
5-way 5-shot 8-query training episode, planned for a 16 GiB device with NVIDIA's rule that one
buffer may take at most a quarter of it, with the GPU's kernels and GEMM workspaces. Prints a
Markdown table: the live peak (a lower bound) and the footprint (the buffers a run reserves).
usage: /usr/bin/python3 tools/plan_table.py [path/to/fewcl]   (default build/fewcl)"""
import json
import re
import subprocess
import sys

FEWCL = sys.argv[1] if len(sys.argv) > 1 else "build/fewcl"
BASE = ["plan", "--json", "--backbone", "resnet34", "--image-size", "224", "--n-query", "8",
        "--device-mem", "16G"]
ROWS = [
    ("raw features (D′ = 25,088), dense Σ", ["--reduced-dim", "0", "--mahalanobis", "dense"]),
    ("raw features (D′ = 25,088), low-rank", ["--reduced-dim", "0", "--mahalanobis", "lowrank"]),
    ("projection to 512, dense Σ", ["--mahalanobis", "dense"]),
    ("projection to 512, low-rank", ["--mahalanobis", "lowrank"]),
    ("projection to 512, dense Σ, checkpointing all", ["--mahalanobis", "dense",
                                                       "--checkpoint", "all"]),
]


def size(b):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.2f} {unit}"
        b /= 1024


def main():
    print("| configuration | Mahalanobis matrices (own peak) | live peak | footprint (reserved) "
          "| fits 16 GiB |")
    print("|---|---|---|---|---|")
    for name, flags in ROWS:
        out = subprocess.run([FEWCL] + BASE + flags, capture_output=True, text=True)
        p = json.loads(out.stdout)
        if p["fits"]:
            cov = size(p["category_peak_bytes"]["covariance"])
            foot = p["footprint_bytes"]
            print(f"| {name} | {cov} | {size(p['peak_bytes'])} | {size(foot)} "
                  f"({foot / p['peak_bytes']:.3f}x) | yes |")
        else:
            m = re.search(r"one buffer of ([\d.]+ \w+) exceeds .*?, ([\d.]+ \w+) \(", p["reason"])
            reason = (f"one {m.group(1)} buffer (Σ of the 5 classes) > the "
                      f"{m.group(2)} largest allocation" if m else p["reason"])
            print(f"| {name} | — | — | — | no: {reason} |")


if __name__ == "__main__":
    main()
