"""Fixtures of the original FS-CT head (docs/maths.md §5), built in PyTorch from the reference
document: tests/fixtures/ops_fsct.safetensors, compared by tests/test_fsct.c.

Weights and input features come from pattern.py, so nothing but the results is committed:
parameter number i (state_dict order, which is the registration order of lib/nn/fsct.c) is
pattern(700 + i, shape, scale) + offset, with (scale, offset) from fill_rule(); the features
[B, D] are pattern(99, (B, D), 1). Forward, mean cross-entropy with labels r // q, backward.

Small configurations (n=3, k=2, q=3, D=40, 2 heads x 8, mlp 24; both variants, depth 1 and 2;
and "cT", cosine with linear.1 scaled by 1e-5 so that Y ~ 1e-5 and the +1e-5 outside the root
of CosineDistLinear's norm changes the logits by tens of percent) store the logits, the loss, every parameter gradient and dfeatures in full. The default shapes
(n=5, k=5, q=8, D=1600, 8 x 64, mlp 512, depth 1; both variants) store the logits, the loss
and per-gradient summaries: sum(g^2) and sum(g * r) with r = pattern(900 + i, shape, 1)
(dfeatures: i = -1, seed 899)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import weight_norm

from fixture import save
from pattern import pattern

CONFIGS = {
    # name: n, k, q, D, heads, dim_head, mlp, variant, depth, full gradients, tiny Y
    "c1": (3, 2, 3, 40, 2, 8, 24, "cosine", 1, True, False),
    "c2": (3, 2, 3, 40, 2, 8, 24, "cosine", 2, True, False),
    "s1": (3, 2, 3, 40, 2, 8, 24, "softmax", 1, True, False),
    "s2": (3, 2, 3, 40, 2, 8, 24, "softmax", 2, True, False),
    "cT": (3, 2, 3, 40, 2, 8, 24, "cosine", 1, True, True),
    "cL": (5, 5, 8, 1600, 8, 64, 512, "cosine", 1, False, False),
    "sL": (5, 5, 8, 1600, 8, 64, 512, "softmax", 1, False, False),
}
TINY = 1e-5  # "tiny Y": linear.1's pattern scaled so that the 1e-5 of CosineDistLinear matters


class CosineDistLinear(nn.Module):
    """backbone.py::CosineDistLinear as docs/maths.md §5.2 states it: L2 norm over dim 1 (the class
    axis of the (Q, n, 64) input), +1e-5 outside the root, WeightNorm'd bias-free Linear,
    scale 2 for outdim <= 200."""

    def __init__(self, indim, outdim):
        super().__init__()
        self.L = weight_norm(nn.Linear(indim, outdim, bias=False), name="weight", dim=0)
        self.scale_factor = 2 if outdim <= 200 else 10

    def forward(self, x):
        norm = torch.norm(x, p=2, dim=1).unsqueeze(1).expand_as(x)
        return self.scale_factor * self.L(x.div(norm + 0.00001))


class Attention(nn.Module):
    """docs/maths.md §5.2: one LN + bias-free projection shared by q, k and v; heads head-major."""

    def __init__(self, dim, heads, dim_head, variant):
        super().__init__()
        self.heads, self.dim_head, self.variant = heads, dim_head, variant
        inner = heads * dim_head
        self.input_linear = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False))
        self.output_linear = nn.Linear(inner, dim)

    def forward(self, q, k, v):
        def split(t):  # (a, b, h*d) -> (h, a, b, d)
            return t.reshape(t.shape[0], t.shape[1], self.heads, self.dim_head).permute(2, 0, 1, 3)

        f_q, f_k, f_v = (split(self.input_linear(t)) for t in (q, k, v))
        dots = torch.matmul(f_q, f_k.transpose(-1, -2))  # (H, Q, n, 1)
        if self.variant == "cosine":
            q_norm = torch.norm(f_q, p=2, dim=-1)  # (H, 1|Q, n)
            k_norm = torch.norm(f_k, p=2, dim=-1)  # (H, Q, 1)
            # the einsum broadcasts the size-1 axis: (H, Q, n, 1); no epsilon
            scores = dots / torch.einsum("bhi,bhj->bhij", q_norm, k_norm)
        else:  # softmax over the last, singleton axis: identically 1
            scores = F.softmax(dots * self.dim_head ** -0.5, dim=-1)
        out = torch.matmul(scores, f_v)  # (H, Q, n, d)
        h, a, b, d = out.shape
        return self.output_linear(out.permute(1, 2, 0, 3).reshape(a, b, h * d))


class FSCT(nn.Module):
    def __init__(self, n, k, q, dim, heads, dim_head, mlp, variant, depth):
        super().__init__()
        self.n, self.k, self.q, self.dim, self.depth = n, k, q, dim, depth
        self.proto_weight = nn.Parameter(torch.ones(n, k, 1))
        self.ATTN = Attention(dim, heads, dim_head, variant)
        self.FFN = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp), nn.GELU(),
                                 nn.Linear(mlp, dim))
        self.linear = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, 64),
            CosineDistLinear(64, 1) if variant == "cosine" else nn.Linear(64, 1))

    def forward(self, features):
        z = features.view(self.n, self.k + self.q, self.dim)
        z_support, z_query = z[:, :self.k], z[:, self.k:].reshape(self.n * self.q, self.dim)
        x = (z_support * self.proto_weight.softmax(-2)).sum(1).unsqueeze(0)  # (1, n, D)
        z_query = z_query.unsqueeze(1)  # (Q, 1, D)
        for _ in range(self.depth):  # the same modules every time
            x = self.ATTN(q=x, k=z_query, v=z_query) + x
            x = self.FFN(x) + x
        return self.linear(x).squeeze()  # (Q, n)


NAMES = ["proto_weight", "ATTN.input_linear.0.weight", "ATTN.input_linear.0.bias",
         "ATTN.input_linear.1.weight", "ATTN.output_linear.weight", "ATTN.output_linear.bias",
         "FFN.0.weight", "FFN.0.bias", "FFN.1.weight", "FFN.1.bias", "FFN.3.weight", "FFN.3.bias",
         "linear.0.weight", "linear.0.bias", "linear.1.weight", "linear.1.bias"]


def fill_rule(name, shape, tiny):
    """(scale, offset) of a parameter's test pattern; tests/test_fsct.c has the same rule."""
    if tiny and name.startswith("linear.1."):
        return TINY / math.sqrt(shape[1]) if len(shape) == 2 else TINY, 0.0
    if name == "proto_weight":
        return 1.0, 0.0
    if name.endswith(".0.weight"):  # the LayerNorms' gamma
        return 0.2, 1.0
    if name == "linear.2.L.weight_g":
        return 0.5, 1.0
    if len(shape) == 2:  # Linear weights (and weight_v): PyTorch's scale 1/sqrt(fan_in)
        return 1.0 / math.sqrt(shape[1]), 0.0
    return 0.1, 0.0  # biases


def run(name, n, k, q, dim, heads, dim_head, mlp, variant, depth, full, tiny):
    model = FSCT(n, k, q, dim, heads, dim_head, mlp, variant, depth)
    params = list(model.named_parameters())
    last = ["linear.2.L.weight_g", "linear.2.L.weight_v"] if variant == "cosine" \
        else ["linear.2.weight", "linear.2.bias"]
    assert [p for p, _ in params] == NAMES + last, [p for p, _ in params]
    assert list(model.state_dict()) == NAMES + last
    with torch.no_grad():
        for i, (pname, p) in enumerate(params):
            scale, offset = fill_rule(pname, tuple(p.shape), tiny)
            p.copy_(pattern(700 + i, tuple(p.shape), scale) + offset)
    b = n * (k + q)
    features = pattern(99, (b, dim), 1.0).requires_grad_()
    logits = model(features)
    labels = torch.arange(n).repeat_interleave(q)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out = {f"{name}.logits": logits, f"{name}.loss": loss.reshape(1)}
    grads = [(pname, p.grad) for pname, p in params] + [("dfeatures", features.grad)]
    for i, (pname, g) in enumerate(grads):
        if full:
            out[f"{name}.grad.{pname}"] = g
        else:
            seed = 900 + i if pname != "dfeatures" else 899
            r = pattern(seed, tuple(g.shape), 1.0).double()
            out[f"{name}.sum2.{pname}"] = (g.double() ** 2).sum().reshape(1)
            out[f"{name}.dot.{pname}"] = (g.double() * r).sum().reshape(1)
    return out


def fsct(outdir):
    tensors = {}
    for name, cfg in CONFIGS.items():
        tensors.update(run(name, *cfg))
    save(f"{outdir}/ops_fsct.safetensors", tensors,
         {"torch": torch.__version__, "op": "FS-CT head (fsct-reference 2), forward + backward",
          "configs": str(CONFIGS)})


FAMILIES = {"fsct": fsct}
