#!/usr/bin/python3
"""Whole-model golden state for `fewcl episode` (llm.c style): the enhanced model of the
reference — the ConvNet backbone of fam_backbone.py and the V-D head of fam_enhanced.py — built
in PyTorch, with every weight from pattern.py, run on a pattern episode in evaluation mode and
then in training mode with one backward. Writes, for a configuration NAME:

    tests/fixtures/episode_NAME_weights.safetensors   the model's parameters and BN buffers
    tests/fixtures/episode_NAME_input.safetensors     x [n, k+q, 3, S, S]
    tests/fixtures/episode_NAME_expected.safetensors  eval.logits, features, logits, loss,
        loss_ce, loss_var, loss_cov, grad.<parameter>, running.<buffer> (after the step)

The backbone runs in float32 as PyTorch would; the head in float64 (fam_enhanced's reference),
so the expected values carry PyTorch's float32 backbone error and nothing else.
usage: /usr/bin/python3 tools/reference/episode.py
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fam_backbone import ConvNet, fill  # noqa: E402
from fam_enhanced import head_forward, head_parameters  # noqa: E402
from fam_fsct import FSCT, fill_rule  # noqa: E402
from fixture import save  # noqa: E402
from pattern import pattern  # noqa: E402

CONFIGS = {
    # conv4 at 32 px: D = 64·2·2 = 256 > reduced_dim 64, so the projection is active.
    "conv4": dict(backbone=4, S=32, n=3, k=2, q=3, r=64, heads=2, dh=16, mlp=32, depth=2,
                  variant="cosine", vic=True, method="enhanced"),
    # the original head (fam_fsct's FSCT, weights by its fill_rule) on conv4 at 16 px: D = 64.
    "conv4_fsct": dict(backbone=4, S=16, n=3, k=2, q=3, heads=2, dh=8, mlp=24, depth=1,
                       variant="cosine", method="fsct"),
}


def backbone_weights(net):
    """The backbone's state_dict under the model's names (integer counters left out)."""
    return {"feature." + key: t.clone() for key, t in net.state_dict().items()
            if not key.endswith("num_batches_tracked")}


def write(name, cfg, outdir, net, weights, x, out):
    """Adds the BN statistics after the step to `out` and writes the three files."""
    for key, t in net.state_dict().items():
        if "running_" in key:
            out["running.feature." + key] = t
    meta = {"torch": torch.__version__, "config": str(cfg)}
    save(f"{outdir}/episode_{name}_weights.safetensors", weights, meta)
    save(f"{outdir}/episode_{name}_input.safetensors", {"x": x}, meta)
    save(f"{outdir}/episode_{name}_expected.safetensors", out, meta)
    print(f"wrote episode_{name}_*.safetensors")


def fsct_head(cfg, dim):
    head = FSCT(cfg["n"], cfg["k"], cfg["q"], dim, cfg["heads"], cfg["dh"], cfg["mlp"],
                cfg["variant"], cfg["depth"])
    with torch.no_grad():
        for i, (name, p) in enumerate(head.named_parameters()):
            scale, offset = fill_rule(name, tuple(p.shape), False)
            p.copy_(pattern(700 + i, tuple(p.shape), scale) + offset)
    return head


def generate_fsct(name, cfg, outdir):
    """The fsct variant of generate(): float32 throughout, as PyTorch runs it."""
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = ConvNet(cfg["backbone"])
    fill(net)
    head = fsct_head(cfg, 64 * (S // 16) ** 2)
    weights = backbone_weights(net)
    weights.update({key: t.detach().clone() for key, t in head.state_dict().items()})
    x = pattern(7, (n, k + q, 3, S, S), 1.0)
    batch = x.reshape(n * (k + q), 3, S, S)
    net.eval()
    with torch.no_grad():
        out = {"eval.logits": head(net(batch)).detach()}
    net.train()
    features = net(batch)
    logits = head(features)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(n).repeat_interleave(q))
    loss.backward()
    out.update(features=features.detach(), logits=logits.detach(), loss=loss.detach().reshape(1),
               loss_ce=loss.detach().reshape(1))
    for key, p in net.named_parameters():
        out["grad.feature." + key] = p.grad
    for key, p in head.named_parameters():
        out["grad." + key] = p.grad
    write(name, cfg, outdir, net, weights, x, out)


def generate(name, cfg, outdir):
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = ConvNet(cfg["backbone"])
    fill(net)
    head_cfg = dict(n=n, k=k, q=q, D=64 * (S // 16) ** 2, r=cfg["r"], heads=cfg["heads"],
                    dh=cfg["dh"], mlp=cfg["mlp"], depth=cfg["depth"])
    prm = head_parameters(head_cfg)
    weights = backbone_weights(net)
    weights.update({key: t.detach().float() for key, t in prm.items()})
    x = pattern(7, (n, k + q, 3, S, S), 1.0)
    batch = x.reshape(n * (k + q), 3, S, S)

    net.eval()  # evaluation: running statistics, no losses
    with torch.no_grad():
        ev = head_forward(head_cfg, prm, net(batch).double(), cfg["variant"], cfg["vic"], False)
    out = {"eval.logits": ev["logits"].detach()}

    net.train()  # training: batch statistics, running statistics updated, one backward
    res = head_forward(head_cfg, prm, net(batch).double(), cfg["variant"], cfg["vic"], True)
    out.update(features=res["features"].detach(), logits=res["logits"].detach())
    for key in ("loss", "loss_ce", "loss_var", "loss_cov"):
        out[key] = res[key].detach().reshape(1)
    for key, p in net.named_parameters():
        out["grad.feature." + key] = p.grad
    for key, t in prm.items():
        out["grad." + key] = t.grad
    write(name, cfg, outdir, net, weights, x, out)


if __name__ == "__main__":
    outdir = os.path.join(HERE, "..", "..", "tests", "fixtures")
    for name, cfg in CONFIGS.items():
        torch.manual_seed(0)
        (generate if cfg["method"] == "enhanced" else generate_fsct)(name, cfg, outdir)
