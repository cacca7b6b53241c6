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

"Pattern" configurations (pattern=True: the larger ones, whose weights would be megabytes) write
only episode_NAME_expected.safetensors; tests/test_episode.c rebuilds their weights and input:

    every parameter and BN buffer K (its model key)  pattern(fnv1a32(K), shape, scale) + offset
        backbone ("feature." keys): the rule of fam_backbone.fill;
        enhanced head: scale() of fam_enhanced, offset 0; fsct head: fill_rule() of fam_fsct
    x                                                pattern(7, [n, k+q, 3, S, S], 1)

and, to stay small, keep a gradient of more than SMALL elements as two summaries instead:
gsum.K = [sum(g^2), sum(g*r)] (float64, r = pattern(9, shape, 1)) and gsub.K = g.flatten()[::s]
(s = ceil(numel / SUB), at most SUB elements). forward_only configurations run evaluation only
and store eval.logits and eval.features.
usage: /usr/bin/python3 tools/reference/episode.py [NAME...]
"""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fam_backbone import ConvNet, ResNetBody, fill, fnv1a32  # noqa: E402
from fam_enhanced import head_forward, head_parameters, names, scale  # noqa: E402
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
    # ---- pattern configurations (weights and input rebuilt by the test) ----
    # the reference's default: conv4 at 84, 5-way 5-shot 8-query, enhanced cosine, default
    # head (D = 1600 -> 512, 4 x 64 heads, mlp 512, depth 2).
    "conv4_84": dict(backbone=4, S=84, n=5, k=5, q=8, r=512, heads=4, dh=64, mlp=512, depth=2,
                     variant="cosine", vic=True, method="enhanced", pattern=True),
    # conv6 at 84, the default head (D = 1600 -> 512, 4 x 64 heads, mlp 512, depth 2), softmax.
    "conv6_softmax": dict(backbone=6, S=84, n=5, k=1, q=2, r=512, heads=4, dh=64, mlp=512,
                          depth=2, variant="softmax", vic=True, method="enhanced", pattern=True),
    # resnet18 at 84: D = 512*3*3 = 4608 -> 512, default head; 2 shots, so that the class
    # covariances are not empty (at 1 shot the centred supports vanish and dense = lowrank).
    "resnet18": dict(backbone=18, S=84, n=2, k=2, q=1, r=512, heads=4, dh=64, mlp=512, depth=2,
                     variant="cosine", vic=True, method="enhanced", pattern=True),
    # resnet34 at 224, evaluation only: D = 512*7*7 = 25088 -> 512, default head.
    "resnet34": dict(backbone=34, S=224, n=2, k=1, q=1, r=512, heads=4, dh=64, mlp=512, depth=2,
                     variant="cosine", vic=True, method="enhanced", pattern=True,
                     forward_only=True),
    # the original head, softmax variant, on conv4 at 16 px (D = 64).
    "conv4_fsct_softmax": dict(backbone=4, S=16, n=3, k=2, q=2, heads=2, dh=8, mlp=24, depth=1,
                               variant="softmax", method="fsct", pattern=True),
}
SMALL, SUB = 4096, 1024


def make_backbone(depth):
    return ConvNet(depth) if depth in (4, 6) else ResNetBody(depth)


def feature_dim(net, S):
    net.eval()
    with torch.no_grad():
        return net(torch.zeros(1, 3, S, S, dtype=next(net.parameters()).dtype)).shape[1]


def put_grad(out, cfg, key, g):
    """The gradient of `key`: in full, or (pattern configurations, large tensors) summarised."""
    if not cfg.get("pattern") or g.numel() <= SMALL:
        out["grad." + key] = g
        return
    d = g.detach().double().flatten()
    r = pattern(9, tuple(g.shape), 1.0).double().flatten()
    out["gsum." + key] = torch.tensor([float((d * d).sum()), float((d * r).sum())])
    out["gsub." + key] = d[::math.ceil(d.numel() / SUB)]


def backbone_weights(net):
    """The backbone's state_dict under the model's names (integer counters left out)."""
    return {"feature." + key: t.clone() for key, t in net.state_dict().items()
            if not key.endswith("num_batches_tracked")}


def write(name, cfg, outdir, net, weights, x, out):
    """Adds the BN statistics after the step to `out` and writes the three files (one for a
    pattern configuration)."""
    if not cfg.get("forward_only"):
        for key, t in net.state_dict().items():
            if "running_" in key:
                out["running.feature." + key] = t
    meta = {"torch": torch.__version__, "config": str(cfg)}
    if cfg.get("pattern"):
        save(f"{outdir}/episode_{name}_expected.safetensors", out, meta)
        print(f"wrote episode_{name}_expected.safetensors")
        return
    save(f"{outdir}/episode_{name}_weights.safetensors", weights, meta)
    save(f"{outdir}/episode_{name}_input.safetensors", {"x": x}, meta)
    save(f"{outdir}/episode_{name}_expected.safetensors", out, meta)
    print(f"wrote episode_{name}_*.safetensors")


def fsct_head(cfg, dim):
    head = FSCT(cfg["n"], cfg["k"], cfg["q"], dim, cfg["heads"], cfg["dh"], cfg["mlp"],
                cfg["variant"], cfg["depth"])
    with torch.no_grad():
        for i, (name, p) in enumerate(head.named_parameters()):
            sc, offset = fill_rule(name, tuple(p.shape), False)
            seed = fnv1a32(name) if cfg.get("pattern") else 700 + i
            p.copy_(pattern(seed, tuple(p.shape), sc) + offset)
    return head


def generate_fsct(name, cfg, outdir):
    """The fsct variant of generate(): float32 throughout, as PyTorch runs it."""
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = make_backbone(cfg["backbone"])
    fill(net)
    head = fsct_head(cfg, feature_dim(net, S))
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
        put_grad(out, cfg, "feature." + key, p.grad)
    for key, p in head.named_parameters():
        put_grad(out, cfg, key, p.grad)
    write(name, cfg, outdir, net, weights, x, out)


def generate(name, cfg, outdir):
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = make_backbone(cfg["backbone"])
    fill(net)
    head_cfg = dict(n=n, k=k, q=q, D=feature_dim(net, S), r=cfg["r"], heads=cfg["heads"],
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
        put_grad(out, cfg, "feature." + key, p.grad)
    for key, t in prm.items():
        put_grad(out, cfg, key, t.grad)
    write(name, cfg, outdir, net, weights, x, out)


# ---- pattern configurations: float64 truth and PyTorch's own float32 error ----------------
#
# The larger configurations are ill-conditioned for gradients in float32: PyTorch in float32
# is up to a few 1e-2 (max-relative) away from the same computation in float64 on some
# BatchNorm and conv gradients. The cause is discrete: max-pool windows whose two largest
# values differ by ~1e-8 relative, and ReLU inputs within float32 rounding of zero (with
# millions of them, some always are), take a different branch in float32 than in float64, and
# where a channel has few elements (resnet18's layer4 at 84 px: 36-54 per channel) one such
# flip moves that channel's BN and conv gradients by up to a few 1e-2, and everything
# upstream of it by ~1e-3 (measured, see the README). fewcl, computing in float32 too, takes
# the same branch as PyTorch float32 on most of them and its own on a few. So the expected
# values are the float64 truth (backbone and head in float64) and, per gradient K, e32.K = the
# largest error against it, under the measure the test uses, of PyTorch float32 runs: one as
# given and PERTURBED more with every weight and input element scaled by (1 + 2^-21 u), u
# uniform in [-1, 1) (seeded), which shifts activations by about float32's own forward error
# and so takes the other branch at the near-ties a float32 computation may flip. The test holds
# fewcl to max(1e-3, 2 * e32.K).
PERTURBED = 6


def perturb(tensors, seed):
    """Scales every element by (1 + 2^-21 u) in place: a rounding-level change."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in (t for t in tensors if t.is_floating_point()):
            t.mul_(1 + 2.0 ** -21 * (2 * torch.rand(t.shape, generator=gen, dtype=t.dtype) - 1))


def run_enhanced(cfg, dtype, seed=None):
    """Evaluation, then one training step, of the enhanced model entirely in `dtype` (with a
    seed: weights and input perturbed)."""
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = make_backbone(cfg["backbone"])
    fill(net)
    net = net.to(dtype)
    net.eval()
    batch = pattern(7, (n * (k + q), 3, S, S), 1.0).to(dtype)
    with torch.no_grad():
        dim = net(batch[:1]).shape[1]
    hc = dict(n=n, k=k, q=q, D=dim, r=cfg["r"], heads=cfg["heads"], dh=cfg["dh"],
              mlp=cfg["mlp"], depth=cfg["depth"])
    prm = {nm: pattern(fnv1a32(nm), sh, scale(nm, sh)).to(dtype).requires_grad_()
           for nm, sh in names(hc)[0]}
    if seed is not None:
        perturb([batch] + list(net.state_dict().values()) + list(prm.values()), seed)
    with torch.no_grad():
        ev = head_forward(hc, prm, net(batch), cfg["variant"], cfg["vic"], False)
    out = {"eval.logits": ev["logits"].detach(), "eval.features": ev["features"].detach()}
    if cfg.get("forward_only"):
        return out, {}, net
    del out["eval.features"]
    net.train()
    res = head_forward(hc, prm, net(batch), cfg["variant"], cfg["vic"], True)
    out.update(features=res["features"].detach(), logits=res["logits"].detach())
    for key in ("loss", "loss_ce", "loss_var", "loss_cov"):
        out[key] = res[key].detach().reshape(1)
    grads = {"feature." + key: p.grad for key, p in net.named_parameters()}
    grads.update({key: t.grad for key, t in prm.items()})
    return out, grads, net


def run_fsct(cfg, dtype, seed=None):
    """The same for the original head (fam_fsct's FSCT module)."""
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = make_backbone(cfg["backbone"])
    fill(net)
    net = net.to(dtype)
    head = fsct_head(cfg, feature_dim(net, S)).to(dtype)
    batch = pattern(7, (n * (k + q), 3, S, S), 1.0).to(dtype)
    if seed is not None:
        perturb([batch] + list(net.state_dict().values()) + list(head.parameters()), seed)
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
    grads = {"feature." + key: p.grad for key, p in net.named_parameters()}
    grads.update({key: p.grad for key, p in head.named_parameters()})
    return out, grads, net


def grad_error(g, out, key, G):
    """The test's error measure of gradient g against the stored expectation of `key`."""
    d = g.detach().double().flatten()
    if "grad." + key in out:
        w = out["grad." + key].double().flatten()
        return float((d - w).abs().max() / max(float(w.abs().max()), 1e-3 * G))
    ws, sub = out["gsum." + key].double(), out["gsub." + key].double()
    r = pattern(9, tuple(g.shape), 1.0).double().flatten()
    norm = math.sqrt(ws[0])
    e = max(abs(float(d.norm()) - norm) / norm, abs(float(d @ r) - ws[1]) / (norm * float(r.norm())))
    dsub = d[::math.ceil(d.numel() / SUB)]
    return max(e, float((dsub - sub).abs().max() / max(float(sub.abs().max()), 1e-3 * G)))


def generate_pattern(name, cfg, outdir):
    run = run_enhanced if cfg["method"] == "enhanced" else run_fsct
    out, grads, net = run(cfg, torch.float64)
    out32, grads32, _ = run(cfg, torch.float32)
    for key, g in grads.items():
        put_grad(out, cfg, key, g)
    G = max((float(t.abs().max()) for key, t in out.items() if key[:5] in ("grad.", "gsub.")),
            default=0.0)
    e32 = {key: grad_error(grads32[key], out, key, G) for key in grads}
    worst = max(((e, key) for key, e in e32.items()), default=(0, ""))
    for seed in range(1, PERTURBED + 1) if grads else ():
        gp = run(cfg, torch.float32, seed)[1]
        for key in grads:
            e32[key] = max(e32[key], grad_error(gp[key], out, key, G))
    for key, e in e32.items():
        out["e32." + key] = torch.tensor([e])
    if grads:
        w2 = max((e, key) for key, e in e32.items())
        print(f"  {name}: PyTorch float32 gradients vs float64: worst {worst[1]} {worst[0]:.2e};"
              f" with the perturbed runs {w2[1]} {w2[0]:.2e}")
    for key, t in out32.items():
        if key in out and key[:5] != "grad.":
            e = float((t.double() - out[key]).abs().max() / out[key].abs().max())
            print(f"  {name}: PyTorch float32 {key} vs float64: {e:.2e}")
    write(name, cfg, outdir, net, None, None, out)


if __name__ == "__main__":
    outdir = os.path.join(HERE, "..", "..", "tests", "fixtures")
    for name, cfg in CONFIGS.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        torch.manual_seed(0)
        if cfg.get("pattern"):
            generate_pattern(name, cfg, outdir)
        else:
            (generate if cfg["method"] == "enhanced" else generate_fsct)(name, cfg, outdir)
