#!/usr/bin/python3
"""Training-parity golden state (issue 5): the model of episode.py's "conv4" configuration (conv4
backbone at 32 px, enhanced head with the projection active, VIC on, dense Mahalanobis), from the
pattern weights of tests/fixtures/episode_conv4_weights.safetensors, trained with
torch.optim.AdamW (lr 1e-3, weight decay 1e-5, PyTorch's betas and eps) on a fixed sequence of
20 episodes x_e = pattern(100 + e, [n(k+q), 3, S, S], 1), training mode throughout.

Writes tests/fixtures/train_conv4_losses.safetensors:
  loss, loss_ce, loss_var, loss_cov [20]  the float64 trajectory (the truth): each step's forward
                                          values, before that step's update;
  e32.<same> [20]                         per step, the largest deviation from the truth of RUNS
                                          PyTorch float32 runs (one as given, the others with
                                          weights and inputs scaled by 1 + 2^-21 u, episode.py's
                                          perturb): relative to the value for loss and loss_ce,
                                          to the total loss for the small var/cov parts;
  final.<name>                            a few parameters after the 20 steps (truth).
Adam moves every parameter by about lr per step whatever the size of its gradient, so where a
gradient is at rounding level its sign is noise and float32 trajectories leave the float64 one
at a rate that doubles every few steps; e32 measures that rate for this trajectory, and the
test holds fewcl to max(1e-3, 3 e32) per step.
usage: /usr/bin/python3 tools/reference/train.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from episode import CONFIGS, perturb  # noqa: E402
from fam_backbone import ConvNet, fill  # noqa: E402
from fam_enhanced import head_forward, head_parameters  # noqa: E402
from fixture import save  # noqa: E402
from pattern import pattern  # noqa: E402

STEPS = 20
# float32 runs measuring the spread (more than episode.py: a trajectory compounds the noise)
RUNS = 16
PARTS = ("loss", "loss_ce", "loss_var", "loss_cov")
FINAL = ["feature.trunk.0.C.weight", "feature.trunk.3.BN.bias", "dim_reduction.0.weight",
         "proto_weight", "attention_blocks.1.ffn.net.2.weight", "weight_controller.log_vars"]


def trajectory(dtype, seed=None):
    """Losses per step [STEPS, 4] and the final parameters, the whole model in `dtype` (with a
    seed: weights and inputs perturbed at rounding level)."""
    cfg = CONFIGS["conv4"]
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    torch.manual_seed(0)
    net = ConvNet(cfg["backbone"])
    fill(net)
    net = net.to(dtype)
    head_cfg = dict(n=n, k=k, q=q, D=64 * (S // 16) ** 2, r=cfg["r"], heads=cfg["heads"],
                    dh=cfg["dh"], mlp=cfg["mlp"], depth=cfg["depth"])
    prm = {key: t.detach().to(dtype).requires_grad_()
           for key, t in head_parameters(head_cfg).items()}
    xs = [pattern(100 + e, (n * (k + q), 3, S, S), 1.0).to(dtype) for e in range(STEPS)]
    if seed is not None:
        perturb(xs + list(net.state_dict().values()) + list(prm.values()), seed)
    opt = torch.optim.AdamW(list(net.parameters()) + list(prm.values()), lr=1e-3,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
    net.train()
    losses = torch.zeros(STEPS, len(PARTS), dtype=torch.float64)
    for e in range(STEPS):
        opt.zero_grad()
        res = head_forward(head_cfg, prm, net(xs[e]), cfg["variant"], cfg["vic"], True)
        for i, key in enumerate(PARTS):
            losses[e, i] = res[key].item()
        opt.step()
    params = {"feature." + key: p.detach() for key, p in net.named_parameters()}
    params.update({key: t.detach() for key, t in prm.items()})
    return losses, params


def main():
    truth, params = trajectory(torch.float64)
    scale = truth.abs().clone()
    scale[:, 2:] = truth[:, :1].abs()  # the small parts against the total loss
    e32 = torch.zeros_like(truth)
    for seed in [None] + list(range(1, RUNS)):
        got, _ = trajectory(torch.float32, seed)
        e32 = torch.maximum(e32, (got - truth).abs() / scale)
    out = {}
    for i, key in enumerate(PARTS):
        out[key] = truth[:, i]
        out["e32." + key] = e32[:, i]
    for key in FINAL:
        out["final." + key] = params[key]
    path = os.path.join(HERE, "..", "..", "tests", "fixtures", "train_conv4_losses.safetensors")
    cfg = CONFIGS["conv4"]
    save(path, out, {"torch": torch.__version__, "config": str(cfg), "steps": STEPS})
    print("wrote", os.path.relpath(path))
    print("float32 deviation per step:", " ".join(f"{v:.1e}" for v in e32.max(dim=1).values))


if __name__ == "__main__":
    main()
