#!/usr/bin/python3
"""Whole-model golden state for `fewcl episode` (llm.c style): the enhanced model of the
reference — the ConvNet backbone of fam_backbone.py and the V-D head of fam_enhanced.py — built
in PyTorch, with every weight from pattern.py, run on a pattern episode in evaluation mode and
then in training mode with one backward. Writes, for a configuration NAME:

    tests/fixtures/episode_NAME_weights.safetensors   the model's parameters and BN buffers
    tests/fixtures/episode_NAME_input.safetensors     x [n, k+q, 3, S, S]
    tests/fixtures/episode_NAME_expected.safetensors  eval.logits, features, logits, loss,
        loss_ce, loss_var, loss_cov, grad.<parameter>, running.<buffer> (after the step)

Every configuration is computed in float64 from float32-representable weights and input: the
expected values are the truth, and with them the generator bounds what float32's branch
decisions may add (see "float64 truth" below). The committed configurations' head weights come
from pattern(1000 + i) (enhanced, fam_enhanced.head_parameters) or pattern(700 + i) (fsct),
in registration order.

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
from decisions import (Recorder, ReluInputs, flip_bounds, relu_flips_outside,  # noqa: E402
                       zero_bias_bounds)
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


# ---- float64 truth and what float32 may do otherwise ---------------------------------------
#
# The configurations are ill-conditioned for gradients in float32: PyTorch in float32
# is up to a few 1e-2 (max-relative) away from the same computation in float64 on some
# BatchNorm and conv gradients. The cause is discrete: max-pool windows whose two largest
# values differ by ~1e-8 relative, and ReLU inputs within float32 rounding of zero (with
# millions of them, some always are), take a different branch in float32 than in float64, and
# where a channel has few elements (resnet18's layer4 at 84 px: 36-54 per channel) one such
# flip moves that channel's BN and conv gradients by up to a few 1e-2, and everything
# upstream of it by ~1e-3. Which of them a float32 computation flips depends on its summation
# order (CPU, BLAS kernel, device), so the expected values are the float64 truth (backbone and
# head in float64) and, per gradient K, the generator bounds from that truth alone
# (decisions.py) what float32 may add to the test's error measure:
#   eflip.K   every candidate decision (within float32's forward error of a tie) flipped the
#             worst way at once;
#   enoise.K  for the conv biases in front of BatchNorm, whose true gradient is 0, the float32
#             rounding noise.
# The test holds fewcl to 1e-3 + FLIP_MARGIN·eflip.K + enoise.K (eflip is first order in the
# decisions, and attained). One PyTorch float32 run is printed against that for the record.
FLIP_MARGIN = 2


def run_enhanced(cfg, dtype, retain=False):
    """Evaluation, then one training step, of the enhanced model entirely in `dtype`; with
    `retain`, the graph is kept for further backward passes. Returns the outputs, the
    gradients and the parameters by model key, and the backbone."""
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
    if cfg.get("pattern"):
        prm = {nm: pattern(fnv1a32(nm), sh, scale(nm, sh)).to(dtype).requires_grad_()
               for nm, sh in names(hc)[0]}
    else:  # the committed weights
        prm = {nm: t.detach().to(dtype).requires_grad_() for nm, t in head_parameters(hc).items()}
    params = {"feature." + key: p for key, p in net.named_parameters()}
    params.update(prm)
    with torch.no_grad():
        ev = head_forward(hc, prm, net(batch), cfg["variant"], cfg["vic"], False)
    out = {"eval.logits": ev["logits"].detach(), "eval.features": ev["features"].detach()}
    if cfg.get("forward_only"):
        return out, {}, params, net
    del out["eval.features"]
    net.train()
    res = head_forward(hc, prm, net(batch), cfg["variant"], cfg["vic"], True, backward=False)
    res["loss"].backward(retain_graph=retain)
    out.update(features=res["features"].detach(), logits=res["logits"].detach())
    for key in ("loss", "loss_ce", "loss_var", "loss_cov"):
        out[key] = res[key].detach().reshape(1)
    return out, {key: p.grad for key, p in params.items()}, params, net


def run_fsct(cfg, dtype, retain=False):
    """The same for the original head (fam_fsct's FSCT module)."""
    n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
    net = make_backbone(cfg["backbone"])
    fill(net)
    net = net.to(dtype)
    head = fsct_head(cfg, feature_dim(net, S)).to(dtype)
    params = {"feature." + key: p for key, p in net.named_parameters()}
    params.update(dict(head.named_parameters()))
    batch = pattern(7, (n * (k + q), 3, S, S), 1.0).to(dtype)
    net.eval()
    with torch.no_grad():
        out = {"eval.logits": head(net(batch)).detach()}
    net.train()
    features = net(batch)
    logits = head(features)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(n).repeat_interleave(q))
    loss.backward(retain_graph=retain)
    out.update(features=features.detach(), logits=logits.detach(), loss=loss.detach().reshape(1),
               loss_ce=loss.detach().reshape(1))
    return out, {key: p.grad for key, p in params.items()}, params, net


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


def bound_error(b, out, key, G):
    """The largest value the test's error measure can take for a gradient within ±b (elementwise)
    of the expectation: max b / max|want| for a full tensor; for a summarised one the norm
    measures are at most |b|/|want| (triangle and Cauchy-Schwarz inequalities) and the
    subsample's as a full tensor's."""
    b = b.double().flatten()
    if "grad." + key in out:
        return float(b.max() / max(float(out["grad." + key].abs().max()), 1e-3 * G))
    sub = out["gsub." + key].double()
    e = float(b.norm()) / math.sqrt(float(out["gsum." + key][0]))
    bsub = b[::math.ceil(b.numel() / SUB)]
    return max(e, float(bsub.max() / max(float(sub.abs().max()), 1e-3 * G)))


def generate(name, cfg, outdir):
    run = run_enhanced if cfg["method"] == "enhanced" else run_fsct
    rec = Recorder()
    with rec:
        out, grads, params, net = run(cfg, torch.float64, retain=True)
    for key, g in grads.items():
        put_grad(out, cfg, key, g)
    G = max((float(t.abs().max()) for key, t in out.items() if key[:5] in ("grad.", "gsub.")),
            default=0.0)
    if grads:
        flips, count = flip_bounds(rec, params)
        noise = zero_bias_bounds(rec, params)
        for key in grads:
            out["eflip." + key] = torch.tensor([bound_error(flips[key], out, key, G)])
            if key in noise:
                b = noise[key].reshape(-1, *([1] * (grads[key].dim() - 1))).expand_as(grads[key])
                out["enoise." + key] = torch.tensor([bound_error(b, out, key, G)])
        report(name, cfg, run, rec, out, grads, G, count)
    if cfg.get("pattern"):
        write(name, cfg, outdir, net, None, None, out)
    else:
        n, k, q, S = cfg["n"], cfg["k"], cfg["q"], cfg["S"]
        write(name, cfg, outdir, net, committed_weights(cfg),
              pattern(7, (n, k + q, 3, S, S), 1.0), out)


def committed_weights(cfg):
    """The float32 weights (and BN buffers before the step) of a committed configuration: the
    ones run_enhanced / run_fsct compute with."""
    net = make_backbone(cfg["backbone"])
    fill(net)
    weights = backbone_weights(net)
    dim = feature_dim(net, cfg["S"])
    if cfg["method"] == "fsct":
        head = fsct_head(cfg, dim).state_dict()
    else:
        head = head_parameters(dict(n=cfg["n"], k=cfg["k"], q=cfg["q"], D=dim, r=cfg["r"],
                                    heads=cfg["heads"], dh=cfg["dh"], mlp=cfg["mlp"],
                                    depth=cfg["depth"]))
    weights.update({key: t.detach().float().clone() for key, t in head.items()})
    return weights


def report(name, cfg, run, rec, out, grads, G, count):
    """For the record: the bounds, and one PyTorch float32 run against them."""
    relus = ReluInputs()
    with relus:
        out32, grads32, _, _ = run(cfg, torch.float32)
    flipped, farthest = relu_flips_outside(rec, relus.inputs)
    allowed = {key: 1e-3 + FLIP_MARGIN * float(out["eflip." + key])
               + float(out.get("enoise." + key, 0)) for key in grads}
    ratio = max((grad_error(grads32[key], out, key, G) / allowed[key], key) for key in grads)
    widest = max((a, key) for key, a in allowed.items())
    print(f"  {name}: {count} decisions within {rec.delta():.1e} of a tie; widest tolerance "
          f"{widest[1]} {widest[0]:.2e}; PyTorch float32 at {ratio[0]:.2f} of it ({ratio[1]}); "
          f"it takes {flipped} ReLUs the other way, the farthest at {farthest:.2f} of the window")
    for key, t in out32.items():
        if key in out and key[:5] != "grad.":
            e = float((t.double() - out[key]).abs().max() / out[key].abs().max())
            print(f"  {name}: PyTorch float32 {key} vs float64: {e:.2e}")


if __name__ == "__main__":
    outdir = os.path.join(HERE, "..", "..", "tests", "fixtures")
    for name, cfg in CONFIGS.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        torch.manual_seed(0)
        generate(name, cfg, outdir)
