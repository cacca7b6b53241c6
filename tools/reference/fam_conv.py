"""Fixtures of the convolution and max-pooling families.

ops_conv.safetensors: for each case C, "C.x", "C.w", optionally "C.b", "C.y" = F.conv2d,
"C.dy" and the autograd gradients "C.dx", "C.dw", "C.db"; "C.geom" = [stride, padding].
ops_pool.safetensors: for each case C, "C.x", "C.y", "C.idx" (F.max_pool2d's indices as
float32, exact below 2^24), "C.dy", "C.dx"; "C.geom" = [kernel, stride, padding]. Pool inputs
are quantised to quarters so that windows hold ties and PyTorch's first-maximum rule is tested.
"""
import torch
import torch.nn.functional as F

from fixture import generator, grads, save, uniform

# name, (N, Cin, H, W), (Cout, KH, KW), stride, padding, bias: the backbones' convolutions
# (Conv4 3x3/1/1 with bias; ResNet 3x3/2/1, stem 7x7/2/3 and downsample 1x1/2, no bias),
# on odd, non-square images so that floor division and edge padding are exercised.
CONV_CASES = [
    ("k3s1p1b", (2, 3, 6, 7), (4, 3, 3), 1, 1, True),
    ("k3s2p1", (2, 3, 7, 6), (4, 3, 3), 2, 1, False),
    ("k7s2p3", (1, 3, 11, 10), (4, 7, 7), 2, 3, False),
    ("k1s2p0", (2, 5, 7, 7), (6, 1, 1), 2, 0, False),
]

# name, (N, C, H, W), kernel, stride, padding: Conv4's 2x2/2 pool, the ResNet stem's 3x3/2/1.
POOL_CASES = [
    ("k2s2p0", (2, 3, 7, 9), 2, 2, 0),
    ("k3s2p1", (2, 3, 8, 7), 3, 2, 1),
]


def conv(outdir):
    g = generator(3)
    out = {}
    for name, (n, cin, h, w), (cout, kh, kw), stride, pad, bias in CONV_CASES:
        x = uniform(g, n, cin, h, w).requires_grad_()
        wt = uniform(g, cout, cin, kh, kw, lo=-0.5, hi=0.5).requires_grad_()
        b = uniform(g, cout, lo=-0.5, hi=0.5).requires_grad_() if bias else None
        y = F.conv2d(x, wt, b, stride=stride, padding=pad)
        dy = uniform(g, *y.shape)
        inputs = (x, wt, b) if bias else (x, wt)
        gs = grads(y, dy, *inputs)
        out.update({f"{name}.x": x, f"{name}.w": wt, f"{name}.y": y, f"{name}.dy": dy,
                    f"{name}.dx": gs[0], f"{name}.dw": gs[1],
                    f"{name}.geom": torch.tensor([stride, pad], dtype=torch.float32)})
        if bias:
            out[f"{name}.b"] = b
            out[f"{name}.db"] = gs[2]
    save(f"{outdir}/ops_conv.safetensors", out, {"torch": torch.__version__, "op": "F.conv2d"})


def pool(outdir):
    g = generator(4)
    out = {}
    for name, shape, k, stride, pad in POOL_CASES:
        x = (torch.round(uniform(g, *shape) * 4) / 4).requires_grad_()
        y, idx = F.max_pool2d(x, k, stride, pad, return_indices=True)
        dy = uniform(g, *y.shape)
        (dx,) = grads(y, dy, x)
        out.update({f"{name}.x": x, f"{name}.y": y, f"{name}.idx": idx.float(),
                    f"{name}.dy": dy, f"{name}.dx": dx,
                    f"{name}.geom": torch.tensor([k, stride, pad], dtype=torch.float32)})
    save(f"{outdir}/ops_pool.safetensors", out, {"torch": torch.__version__, "op": "F.max_pool2d"})


FAMILIES = {"conv": conv, "pool": pool}
