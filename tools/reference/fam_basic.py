"""Fixtures of the elementwise and linear families."""
import torch
import torch.nn.functional as F

from fixture import generator, grads, save, uniform


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
