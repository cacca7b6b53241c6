"""Fixture of the enhanced FS-CT head, fork version V-D (docs/maths.md §4, §6.1, §1.2), built
here from the reference document: projection Linear -> LayerNorm -> ReLU, softmax-weighted
prototypes, cross-attention blocks (one LN1 for q, k and v; F.normalize cosine or scaled softmax),
the Mahalanobis classifier (torch.linalg.cholesky + cholesky_inverse), VIC variance/covariance and
the uncertainty weighting. Computed in float64 (weights and inputs are float32 pattern values),
so the fixture holds the exact answer and the C side's float32 error is measured alone.

Weights: parameter i in registration order (the order of lib/nn/enhanced.c and of names() here)
is pattern(1000 + i, shape, scale) with scale 1/sqrt(fan_in) for Linear weights, 1 for
LayerNorm weights, 0.1 for biases, 0.5 for proto_weight, 1 for log_vars. Features
pattern(7, [B, D], 1). Small configurations keep full gradients; the default-size ones keep
per-tensor summaries sum(g^2) and sum(g*r), r = pattern(4242, shape, 1)."""
import math

import torch
import torch.nn.functional as F

from fam_mahalanobis import mahalanobis_logits
from fixture import save
from pattern import pattern

SMALL = dict(n=3, k=2, q=3, D=40, r=16, heads=2, dh=8, mlp=24, depth=2)
DEFAULT = dict(n=5, k=5, q=8, D=1600, r=512, heads=4, dh=64, mlp=512, depth=2)


def names(c):
    proj = c["r"] > 0 and c["D"] > c["r"]
    d = c["r"] if proj else c["D"]
    inner = c["heads"] * c["dh"]
    out = []
    if proj:
        out += [("dim_reduction.0.weight", (d, c["D"])), ("dim_reduction.0.bias", (d,)),
                ("dim_reduction.1.weight", (d,)), ("dim_reduction.1.bias", (d,))]
    out.append(("proto_weight", (c["n"], c["k"], 1)))
    for b in range(c["depth"]):
        p = f"attention_blocks.{b}."
        out += [(p + "attention.to_q.weight", (inner, d)), (p + "attention.to_k.weight", (inner, d)),
                (p + "attention.to_v.weight", (inner, d)),
                (p + "attention.to_out.weight", (d, inner)), (p + "attention.to_out.bias", (d,)),
                (p + "norm1.weight", (d,)), (p + "norm1.bias", (d,)),
                (p + "norm2.weight", (d,)), (p + "norm2.bias", (d,)),
                (p + "ffn.net.0.weight", (c["mlp"], d)), (p + "ffn.net.0.bias", (c["mlp"],)),
                (p + "ffn.net.2.weight", (d, c["mlp"])), (p + "ffn.net.2.bias", (d,))]
    out.append(("weight_controller.log_vars", (3,)))
    return out, proj, d


def scale(name, shape):
    if name == "proto_weight":
        return 0.5
    if name == "weight_controller.log_vars":
        return 1.0
    if name.endswith(".weight") and len(shape) == 2:
        return 1.0 / math.sqrt(shape[1])
    if name.endswith(".weight"):
        return 1.0  # LayerNorm
    return 0.1


def head_parameters(c):
    """The head's parameters in registration order, filled from pattern.py (float64, leaves)."""
    plist, _, _ = names(c)
    return {nm: pattern(1000 + i, sh, scale(nm, sh)).double().requires_grad_()
            for i, (nm, sh) in enumerate(plist)}


def head(c, variant, vic, training=True):
    prm = head_parameters(c)
    x = pattern(7, (c["n"] * (c["k"] + c["q"]), c["D"]), 1.0).double().requires_grad_()
    res = head_forward(c, prm, x, variant, vic, training)
    return res, prm, x


def head_forward(c, prm, x, variant, vic, training=True, backward=True):
    """Forward (and, when training and `backward`, backward of the total loss) of the head on
    features x."""
    _, proj, d = names(c)
    n, k, q = c["n"], c["k"], c["q"]
    if proj:
        z = F.linear(x, prm["dim_reduction.0.weight"], prm["dim_reduction.0.bias"])
        z = F.layer_norm(z, (d,), prm["dim_reduction.1.weight"], prm["dim_reduction.1.bias"], 1e-5)
        z = F.relu(z)
    else:
        z = x
    zz = z.view(n, k + q, d)
    s, zq = zz[:, :k], zz[:, k:].reshape(n * q, d)
    w = torch.softmax(prm["proto_weight"], dim=1)
    p = (s * w).sum(dim=1)
    h = zq
    Q, H, dh = n * q, c["heads"], c["dh"]
    for b in range(c["depth"]):
        pre = f"attention_blocks.{b}."

        def ln1(t):
            return F.layer_norm(t, (d,), prm[pre + "norm1.weight"], prm[pre + "norm1.bias"], 1e-5)
        u, pn = ln1(h), ln1(p)
        qq = F.linear(u, prm[pre + "attention.to_q.weight"]).view(Q, H, dh)
        kk = F.linear(pn, prm[pre + "attention.to_k.weight"]).view(n, H, dh)
        vv = F.linear(pn, prm[pre + "attention.to_v.weight"]).view(n, H, dh)
        if variant == "cosine":
            a = torch.einsum("rhd,chd->rhc", F.normalize(qq, dim=-1), F.normalize(kk, dim=-1))
        else:
            a = torch.softmax(torch.einsum("rhd,chd->rhc", qq, kk) / math.sqrt(dh), dim=-1)
        o = torch.einsum("rhc,chd->rhd", a, vv).reshape(Q, H * dh)
        h = h + F.linear(o, prm[pre + "attention.to_out.weight"], prm[pre + "attention.to_out.bias"])
        f = F.layer_norm(h, (d,), prm[pre + "norm2.weight"], prm[pre + "norm2.bias"], 1e-5)
        f = F.linear(F.gelu(F.linear(f, prm[pre + "ffn.net.0.weight"], prm[pre + "ffn.net.0.bias"])),
                     prm[pre + "ffn.net.2.weight"], prm[pre + "ffn.net.2.bias"])
        h = h + f
    logits = mahalanobis_logits(s, p, h)
    res = {"features": z, "logits": logits}
    if not training:
        return res
    labels = torch.arange(n, device=logits.device).repeat_interleave(q)
    ce = F.cross_entropy(logits, labels)
    res["loss_ce"] = ce
    if vic:
        eps = 1e-4
        e = torch.cat([s.reshape(n * k, d), p], dim=0)
        sigma = torch.sqrt(e.var(dim=0) + eps)
        lv = torch.mean(torch.relu(1.0 - sigma - eps))
        zc = (e - e.mean(dim=0)) / (e.std(dim=0) + eps)
        cc = zc.T @ zc / (e.shape[0] - 1 + eps)
        lc = ((cc ** 2).sum() - (torch.diagonal(cc) ** 2).sum()) / (d * (d - 1) + eps)
        sv = prm["weight_controller.log_vars"]
        total = sum(l * torch.exp(-sv[i]) + sv[i] for i, l in enumerate((ce, lv, lc)))
        res.update(loss_var=lv, loss_cov=lc)
    else:
        total = ce
    res["loss"] = total
    if backward:
        total.backward()
    return res


def summary(t):
    t = t.detach().double().reshape(-1)
    r = pattern(4242, (t.numel(),), 1.0).double()
    return torch.stack([(t * t).sum(), (t * r).sum()])


def enhanced(outdir):
    out = {}
    small = [("s_cos_vic", SMALL, "cosine", True), ("s_soft_vic", SMALL, "softmax", True),
             ("s_cos_novic", SMALL, "cosine", False), ("s_soft_novic", SMALL, "softmax", False),
             ("s_noproj_cos_vic", dict(SMALL, D=12), "cosine", True),
             ("s_noproj_soft_novic", dict(SMALL, D=12), "softmax", False)]
    for tag, c, variant, vic in small:
        res, prm, x = head(c, variant, vic)
        for key, v in res.items():
            out[f"{tag}/{key}"] = v.detach().reshape(-1)
        for nm, t in prm.items():
            out[f"{tag}/grad/{nm}"] = t.grad if t.grad is not None else torch.zeros_like(t)
        out[f"{tag}/dfeatures"] = x.grad
    for tag, variant in (("d_cos_vic", "cosine"), ("d_soft_vic", "softmax")):
        res, prm, x = head(DEFAULT, variant, True)
        out[f"{tag}/logits"] = res["logits"].detach()
        for key in ("loss", "loss_ce", "loss_var", "loss_cov"):
            out[f"{tag}/{key}"] = res[key].detach().reshape(1)
        out[f"{tag}/features_sum"] = summary(res["features"])
        for nm, t in prm.items():
            out[f"{tag}/gsum/{nm}"] = summary(t.grad)
        out[f"{tag}/dfeatures_sum"] = summary(x.grad)
    save(f"{outdir}/ops_enhanced.safetensors", out,
         {"torch": torch.__version__,
          "op": "enhanced FS-CT head V-D (float64 reference of docs/maths.md §4)",
          "small": str(SMALL), "default": str(DEFAULT)})


FAMILIES = {"enhanced": enhanced}
