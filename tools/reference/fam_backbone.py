"""Fixture of the backbones (lib/nn/backbone.c): ops_backbone.safetensors.

The ConvNet (conv4/conv6) is built here from docs/maths.md §2.4 (ConvBlock = Conv3x3(pad 1, bias) ->
BatchNorm2d -> ReLU -> MaxPool 2x2 in blocks 0-3); the ResNets are torchvision's resnet18/34 up
to layer4 (docs/maths.md §2.5). Every parameter and BatchNorm buffer named K (state_dict key, with
the "feature." prefix the model uses) is filled from pattern.py with seed fnv1a32("feature."+K):

    conv weight   pattern(s, shape, 1/sqrt(fan_in))     conv bias     pattern(s, shape, 0.1)
    BN weight     1 + pattern(s, shape, 0.3)            BN bias       pattern(s, shape, 0.2)
    running_mean  pattern(s, shape, 0.1)                running_var   1 + pattern(s, shape, 0.5)

The image is pattern(7, [B,3,S,S], 1) and the upstream gradient pattern(8, [B,D], 1). One
forward + backward of sum(features * dfeatures) per case, computed in float64: the expected
values are the truth, not one float32 run (whose ReLU and max-pool decisions near a tie depend
on its summation order). Keys, for case C:

    C.features          [B, D] (r34: every 8th column, "C.features_sub", plus "C.fsum")
    C.g.<key>           full parameter gradients (c4 only)
    C.s.<key>           [2]: sum(g^2), sum(g * pattern(9, shape, 1)) in float64, per parameter
    C.rs.<key>          running_mean / running_var after the step (training cases)
    C.fsum              [2]: sum(f^2), sum(f * pattern(9, [B,D], 1))
    C.e.<key>           [2]: what float32's branch decisions may add to the gradient (below)

Branch decisions (decisions.py): a ReLU input or a max-pool gap within float32's forward error
of a tie may go either way in any float32 implementation, and the gradient jumps there. With b
the elementwise bound of every candidate flipped the worst way at once (flip_bounds), a float32
gradient g may differ from the truth w by b on top of its smooth rounding error, so its
summaries by at most ||b|| (|‖g‖ − ‖w‖| <= ‖g − w‖) and sum(b * |r|), r = pattern(9): C.e.<key>
holds those two, and tests/test_backbone.c widens its bar by them.

Cases: c4 (conv4, 84, B=4, train), c4e (conv4, 84, B=4, eval: running statistics, backward
too), c4t (conv4, 16, B=2, train: the small case for oclgrind), c6 (conv6, 84, B=4, train), r18
(resnet18, 84, B=4, train), r18t (resnet18, 40, B=2, train: small case), r34 (resnet34, 224, B=2,
train, forward only) and r34e (the same, eval).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from decisions import Recorder, flip_bounds
from fixture import save
from pattern import pattern


def fnv1a32(s):
    h = 2166136261
    for c in s.encode():
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


class ConvBlock(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.C = nn.Conv2d(cin, 64, 3, padding=1, bias=True)
        self.BN = nn.BatchNorm2d(64)
        self.pool = pool

    def forward(self, x):
        x = F.relu(self.BN(self.C(x)))
        return F.max_pool2d(x, 2, 2) if self.pool else x


class ConvNet(nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.trunk = nn.Sequential(*[ConvBlock(3 if i == 0 else 64, i < 4) for i in range(depth)])

    def forward(self, x):
        return self.trunk(x).flatten(1)


class ResNetBody(nn.Module):
    def __init__(self, depth):
        super().__init__()
        tv = torchvision.models.resnet18() if depth == 18 else torchvision.models.resnet34()
        for name in ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]:
            setattr(self, name, getattr(tv, name))

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.flatten(1)


def fill(model):
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key.endswith("num_batches_tracked"):
                continue
            s, shape = fnv1a32("feature." + key), tuple(t.shape)
            leaf = key.rsplit(".", 1)[1]
            if t.dim() == 4:
                v = pattern(s, shape, 1.0 / math.sqrt(shape[1] * shape[2] * shape[3]))
            elif leaf == "running_mean":
                v = pattern(s, shape, 0.1)
            elif leaf == "running_var":
                v = 1 + pattern(s, shape, 0.5)
            elif ".C." in key:  # ConvNet conv bias
                v = pattern(s, shape, 0.1)
            elif leaf == "weight":
                v = 1 + pattern(s, shape, 0.3)
            else:
                v = pattern(s, shape, 0.2)
            t.copy_(v)


def summary(t):
    d = t.detach().double().flatten()
    r = pattern(9, tuple(t.shape), 1.0).double().flatten()
    return torch.tensor([float((d * d).sum()), float((d * r).sum())])


def run(out, case, model, size, batch, training, full=False, summaries=True, backward=True,
        subsample=False, stats=True):
    fill(model)
    model.double().train(training)
    x = pattern(7, (batch, 3, size, size), 1.0).double()
    rec = Recorder()
    with rec:
        f = model(x)
    if subsample:
        out[f"{case}.features_sub"] = f[:, ::8]
    else:
        out[f"{case}.features"] = f
    out[f"{case}.fsum"] = summary(f)
    if backward:
        f.backward(pattern(8, tuple(f.shape), 1.0).double(), retain_graph=True)
        params = dict(model.named_parameters())
        bound, count = flip_bounds(rec, params)
        for key, p in params.items():
            if full:
                out[f"{case}.g.{key}"] = p.grad
            if summaries:
                out[f"{case}.s.{key}"] = summary(p.grad)
            r = pattern(9, tuple(p.shape), 1.0).double()
            b = bound[key].double()
            out[f"{case}.e.{key}"] = torch.tensor([float(b.norm()), float((b * r.abs()).sum())])
        widest = max((float(out[f"{case}.e.{k}"][0]) / max(float(p.grad.norm()), 1e-30), k)
                     for k, p in params.items() if ".C.bias" not in k)
        print(f"  {case}: {count} decisions within {rec.delta():.1e} of a tie; widest "
              f"||b||/||g|| {widest[0]:.2e} ({widest[1]})")
    if training and stats:
        for key, t in model.state_dict().items():
            if "running_" in key:
                out[f"{case}.rs.{key}"] = t


def backbone(outdir):
    torch.use_deterministic_algorithms(True)
    out = {}
    run(out, "c4", ConvNet(4), 84, 4, True, full=True, summaries=False)
    run(out, "c4e", ConvNet(4), 84, 4, False)
    run(out, "c4t", ConvNet(4), 16, 2, True)
    run(out, "c6", ConvNet(6), 84, 4, True)
    run(out, "r18", ResNetBody(18), 84, 4, True)
    run(out, "r18t", ResNetBody(18), 40, 2, True, stats=False)
    run(out, "r34", ResNetBody(34), 224, 2, True, backward=False, subsample=True)
    run(out, "r34e", ResNetBody(34), 224, 2, False, backward=False, subsample=True)
    save(f"{outdir}/ops_backbone.safetensors", out,
         {"torch": torch.__version__, "torchvision": torchvision.__version__})


FAMILIES = {"backbone": backbone}
