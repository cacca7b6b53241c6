#!/usr/bin/python3
"""Training-parity golden state (issue 5): the model of episode.py's "conv4" configuration (conv4
backbone at 32 px, enhanced head with the projection active, VIC on, dense Mahalanobis), from the
same pattern weights (tests/fixtures/episode_conv4_weights.safetensors), trained in PyTorch with
torch.optim.AdamW (lr 1e-3, weight decay 1e-5, PyTorch's betas and eps) on a fixed sequence of
20 episodes x_e = pattern(100 + e, [n(k+q), 3, S, S], 1), training mode throughout.

Writes tests/fixtures/train_conv4_losses.safetensors: loss, loss_ce, loss_var, loss_cov [20]
(the forward's values at each step, before that step's update) and, after the 20 steps, the
final values of a few parameters (final.<name>) to check the weights' trajectory too.
The backbone runs in float32 as PyTorch would and the head in float64 (fam_enhanced), so the
trajectory carries PyTorch's float32 backbone rounding and nothing else.
usage: /usr/bin/python3 tools/reference/train.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from episode import CONFIGS  # noqa: E402
from fam_backbone import ConvNet, fill  # noqa: E402
from fam_enhanced import head_forward, head_parameters  # noqa: E402
from fixture import save  # noqa: E402
from pattern import pattern  # noqa: E402

STEPS = 20
FINAL = ["feature.trunk.0.C.weight", "feature.trunk.3.BN.bias", "dim_reduction.0.weight",
         "proto_weight", "attention_blocks.1.ffn.net.2.weight", "weight_controller.log_vars"]


def main():
    cfg = CONFIGS["conv4"]
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    torch.manual_seed(0)
    net = ConvNet(cfg["backbone"])
    fill(net)
    head_cfg = dict(n=n, k=k, q=q, D=64 * (S // 16) ** 2, r=cfg["r"], heads=cfg["heads"],
                    dh=cfg["dh"], mlp=cfg["mlp"], depth=cfg["depth"])
    prm = head_parameters(head_cfg)
    opt = torch.optim.AdamW(list(net.parameters()) + list(prm.values()), lr=1e-3,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5)
    net.train()
    out = {key: torch.zeros(STEPS) for key in ("loss", "loss_ce", "loss_var", "loss_cov")}
    for e in range(STEPS):
        x = pattern(100 + e, (n * (k + q), 3, S, S), 1.0)
        opt.zero_grad()
        res = head_forward(head_cfg, prm, net(x).double(), cfg["variant"], cfg["vic"], True)
        for key in out:
            out[key][e] = res[key].item()
        opt.step()
    params = {"feature." + key: p for key, p in net.named_parameters()}
    params.update(prm)
    for key in FINAL:
        out["final." + key] = params[key].detach()
    path = os.path.join(HERE, "..", "..", "tests", "fixtures", "train_conv4_losses.safetensors")
    save(path, out, {"torch": torch.__version__, "config": str(cfg), "steps": STEPS})
    print("wrote", os.path.relpath(path), "losses", [round(v, 5) for v in out["loss"].tolist()])


if __name__ == "__main__":
    main()
