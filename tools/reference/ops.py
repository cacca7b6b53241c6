#!/usr/bin/python3
"""PyTorch fixtures for the op families: tests/fixtures/ops_<family>.safetensors.

Each family lives in tools/reference/fam_<family>.py, which defines FAMILIES = {name: fn};
fn(outdir) writes ops_<name>.safetensors holding the inputs (drawn from a seeded generator),
the outputs PyTorch computes in float32 and the autograd gradients for a given upstream
gradient. The tests run fewcl on the same inputs and compare. Reproducible: same torch
version and seeds give the same bytes.

usage: /usr/bin/python3 tools/reference/ops.py [--out tests/fixtures] [family ...]
"""
import argparse
import glob
import importlib
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def families():
    found = {}
    for path in sorted(glob.glob(os.path.join(HERE, "fam_*.py"))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        found.update(mod.FAMILIES)
    return found


def main():
    fams = families()
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "..", "tests", "fixtures"))
    ap.add_argument("families", nargs="*", default=sorted(fams))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for fam in a.families:
        torch.manual_seed(0)
        fams[fam](a.out)
        print(f"wrote ops_{fam}.safetensors")


if __name__ == "__main__":
    main()
