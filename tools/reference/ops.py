#!/usr/bin/python3
"""PyTorch fixtures for the op families (tests/fixtures/ops_<family>.safetensors).

Each file holds the inputs (drawn here from a seeded generator), the outputs PyTorch computes
in float32, and the gradients from autograd for a given upstream gradient `dy`. The tests run
fewcl on the same inputs and compare. Reproducible: same torch version and seed → same bytes.

usage: /usr/bin/python3 tools/reference/ops.py [--out tests/fixtures]
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture import generator, save, uniform  # noqa: E402


def grads(out, dy, *inputs):
    return torch.autograd.grad(out, inputs, dy)


def linear(outdir):
    g = generator(2)
    n, fin, fout = 7, 19, 11
    x = uniform(g, n, fin).requires_grad_()
    w = uniform(g, fout, fin, lo=-0.5, hi=0.5).requires_grad_()
    b = uniform(g, fout, lo=-0.5, hi=0.5).requires_grad_()
    y = F.linear(x, w, b)
    dy = uniform(g, n, fout)
    dx, dw, db = grads(y, dy, x, w, b)
    save(f"{outdir}/ops_linear.safetensors",
         {"x": x, "w": w, "b": b, "y": y, "dy": dy, "dx": dx, "dw": dw, "db": db},
         {"torch": torch.__version__, "op": "F.linear"})


def elementwise(outdir):
    g = generator(1)
    x = uniform(g, 3, 5, 7).requires_grad_()
    y = torch.relu(x)
    dy = uniform(g, 3, 5, 7)
    (dx,) = grads(y, dy, x)
    save(f"{outdir}/ops_elementwise.safetensors", {"x": x, "relu": y, "dy": dy, "relu_dx": dx},
         {"torch": torch.__version__, "op": "torch.relu"})


FAMILIES = {"elementwise": elementwise, "linear": linear}


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures"))
    ap.add_argument("families", nargs="*", default=sorted(FAMILIES))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    for fam in a.families:
        FAMILIES[fam](a.out)
        print(f"wrote {a.out}/ops_{fam}.safetensors")


if __name__ == "__main__":
    main()
