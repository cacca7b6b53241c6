#!/usr/bin/python3
"""Teacher-forced training parity (issue 15): states of a float64 AdamW trajectory from which
tests/test_train_parity.c takes one step at a time.

The model is episode.py's "conv4" configuration (conv4 backbone at 32 px, enhanced head with the
projection active, VIC on, dense Mahalanobis) from the pattern weights of
tests/fixtures/episode_conv4_weights.safetensors, trained in float64 with torch.optim.AdamW
(lr 1e-3, weight decay 1e-5, PyTorch's betas and eps) on the fixed episodes
x_e = pattern(100 + e, [n(k+q), 3, S, S], 1), training mode throughout. Step e (from 0) is the
forward, backward and update on x_e from the state S_e reached after e updates.

Why teacher-forced: Adam moves every parameter by about lr whatever the size of its gradient,
so where a gradient is at rounding level its sign is noise, and any float32 run leaves the
float64 trajectory at a rate that doubles every few steps. One step from an exact state is not
chaotic; the test loads S_e (rounded to float32) into fewcl for each e in STATES.

Writes tests/fixtures/train_conv4_stateNN.safetensors for each NN in STATES:
  <name>, adamw.m.<name>, adamw.v.<name>  S_e in fewcl's checkpoint format (parameters and
      BatchNorm buffers under the model's names, AdamW moments, "adamw_step" = e in the
      metadata); absent for e = 0, which is the weights file with zero moments;
  grad.<name>   the float64 gradient of the total loss at S_e on x_e (classifies the update);
  loss.step     [4] total, cross-entropy, variance, covariance at S_e on x_e (float64);
  loss.next     [4] the same at S_{e+1} on x_{e+1};
  scale.step    [4] the rounding-error scale of a float32 evaluation of loss.step (below);
  scale.next    [4] the same for loss.next after a float32 step from S_e, update included;
  noise.next    [4] the worst-case effect on loss.next of the elements whose step is
      undetermined by the gradient model (below), added to the test's tolerance as it is;
  eta           [1] the gradient-error model ETA.

Rounding-error scale (the probabilistic model of Higham and Mary, SIAM J. Sci. Comput. 41(5),
2019: rounding errors independent and of mean zero). Every floating-point operation of the
forward is recorded (TorchFunctionMode) with a bound on its local rounding error per output
element: sqrt(K)·u·Σ|terms| for a K-term dot product or sum (conv, linear, matmul, einsum,
sum, mean, var), a few u·|y| for elementwise operations (the OpenCL ulp limits for exp, sqrt,
division, erf), and for the statistics of BatchNorm and LayerNorm, shared by a whole channel or
row, sqrt(K)·u·mean|x| on the mean and sqrt(K)·u·mean(x²) on the variance; u = 2^-24. Rounding
S_e to float32 adds u·|θ| per parameter. Each bound times |∂L/∂(that value)| (float64) bounds
that error's first-order effect on the loss L; by Hoeffding's inequality the sum of such
independent effects exceeds λ·sqrt(Σ bound²) with probability at most 2·exp(−λ²/2). The scale
is sqrt(Σ bound²); the test takes λ = 6. The bounds are conservative: sqrt(K)·u·Σ|terms|
overstates a random-sign sum's error by about sqrt(K), and float32 PyTorch from the same state
lands within 1% of the test's tolerance (printed).

Update model: a float32 gradient element may differ from the float64 one by up to
ETA·max|g| over its tensor (ETA = 1e-3: about 40 operations deep, each within sqrt(K)·u ≈ 1e-5
for K ≤ 30720, and ReLU or max-pool decisions that flip on values within rounding of a tie).
The AdamW direction r = m̂/(sqrt(v̂) + eps) then moves by at most w = max |r(g') − r(g)| over
that interval, plus the kernel's own float32 error on r (both as the test computes them).
Elements whose |g| is within ETA·max|g| can change sign: "noise"; their effect on loss.next is
bounded by lr·Σ|∂L/∂θ|·w (noise.next); the others enter scale.next as independent terms
lr·|∂L/∂θ|·w.
usage: /usr/bin/python3 tools/reference/train.py
"""
import math
import os
import sys

import torch
from torch.overrides import TorchFunctionMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from episode import CONFIGS  # noqa: E402
from fam_backbone import ConvNet, fill  # noqa: E402
from fam_enhanced import head_forward, head_parameters  # noqa: E402
from fixture import save  # noqa: E402
from pattern import pattern  # noqa: E402

# The initial state, the step-6 region where the free-running float32 trajectory first left
# the old tolerance, and a later one (larger t: the bias corrections near 1).
STATES = (0, 5, 12)
PARTS = ("loss", "loss_ce", "loss_var", "loss_cov")
LR, BETA1, BETA2, EPS, WD = 1e-3, 0.9, 0.999, 1e-8, 1e-5
ETA = 1e-3
U = 2.0 ** -24
CFG = CONFIGS["conv4"]
N, K, Q, S = CFG["n"], CFG["k"], CFG["q"], CFG["S"]
HEAD = dict(n=N, k=K, q=Q, D=64 * (S // 16) ** 2, r=CFG["r"], heads=CFG["heads"], dh=CFG["dh"],
            mlp=CFG["mlp"], depth=CFG["depth"])


def episode(e):
    return pattern(100 + e, (N * (K + Q), 3, S, S), 1.0).double()


def build(state=None):
    """The float64 model: the backbone module, the head's parameter dict and every trainable
    parameter by its fewcl name; from the pattern weights, or from `state`."""
    torch.manual_seed(0)
    net = ConvNet(CFG["backbone"])
    fill(net)
    net = net.double().train()
    head = {key: t.detach().double().requires_grad_() for key, t in head_parameters(HEAD).items()}
    params = {"feature." + key: p for key, p in net.named_parameters()}
    params.update(head)
    if state is not None:
        with torch.no_grad():
            for key, p in params.items():
                p.copy_(state["param"][key])
            for key, b in net.named_buffers():
                if "running" in key:
                    b.copy_(state["buffer"]["feature." + key])
    return net, head, params


def forward(net, head, x):
    """The loss parts (graph kept, no backward)."""
    return head_forward(HEAD, head, net(x), CFG["variant"], CFG["vic"], True, backward=False)


def trajectory(steps):
    """torch.optim.AdamW for `steps` steps: the states S_e for e in STATES, the parameters after
    their step, and the loss parts of every step."""
    net, head, params = build()
    opt = torch.optim.AdamW(params.values(), lr=LR, betas=(BETA1, BETA2), eps=EPS,
                            weight_decay=WD)
    states, losses = {}, []
    for e in range(steps):
        if e in STATES:
            states[e] = snapshot(net, params, opt, e)
        opt.zero_grad()
        res = forward(net, head, episode(e))
        res["loss"].backward()
        losses.append(torch.tensor([res[p].item() for p in PARTS], dtype=torch.float64))
        opt.step()
        if e in STATES:
            states[e]["after"] = {key: p.detach().clone() for key, p in params.items()}
    return states, losses


def snapshot(net, params, opt, e):
    st = {"t": e, "param": {key: p.detach().clone() for key, p in params.items()},
          "buffer": {"feature." + key: b.clone() for key, b in net.named_buffers()
                     if "running" in key}}
    zero = {key: torch.zeros_like(p) for key, p in params.items()}
    st["m"] = {key: opt.state[p]["exp_avg"].clone() for key, p in params.items()} if e else zero
    st["v"] = {key: opt.state[p]["exp_avg_sq"].clone() for key, p in params.items()} if e else zero
    return st


# ---- the rounding-error scale of a float32 forward ----

# Operations that round nothing: selection, layout, sign.
EXACT = {"relu", "max_pool2d", "view", "reshape", "flatten", "__getitem__", "stack", "cat", "neg",
         "__neg__", "t", "transpose", "permute", "diagonal", "repeat_interleave", "contiguous",
         "clone", "unsqueeze", "squeeze", "expand", "__get__", "to", "double", "float"}
# Elementwise operations: error bound in units of u = 2^-24 (half an ulp), from the OpenCL
# limits (exp, log, sqrt 3 ulp; division 2.5; erf 16, for GELU); others are correctly rounded.
ULPS = {"exp": 6, "log": 6, "sqrt": 6, "rsqrt": 4, "div": 5, "__truediv__": 5,
        "__rtruediv__": 5, "gelu": 32}
CONTRACTIONS = {"conv2d", "linear", "matmul", "__matmul__", "einsum"}


def einsum_length(eq, operands):
    inputs, out = eq.replace(" ", "").split("->")
    sizes = {}
    for sub, t in zip(inputs.split(","), operands):
        sizes.update(zip(sub, t.shape))
    return math.prod(s for c, s in sizes.items() if c not in out)


def contraction_length(name, args):
    if name == "conv2d":
        return args[1][0].numel()
    if name == "linear":
        return args[1].shape[-1]
    if name == "einsum":
        return einsum_length(args[0], args[1:])
    return args[0].shape[-1]


def absolute(a):
    return a.abs() if isinstance(a, torch.Tensor) else a


def contraction_sq(name, args, kwargs, dy):
    """Σ (sqrt(K)·u·|dy|·(|A||B|))² over the output of a dot-product operation."""
    with torch.no_grad():
        terms = RECORD_FUNCS[name](*[absolute(a) for a in args],
                                   **{k: absolute(v) for k, v in kwargs.items()})
    bound = math.sqrt(contraction_length(name, args)) * U * terms
    return ((dy.abs() * bound) ** 2).sum()


def stats_sq(x, y, dy, shift, scale, dims, eps):
    """A normalisation y = scale·(x − mean)/sqrt(var + eps) + shift over `dims`: its mean and
    variance errors are shared by everything they normalise (one term per channel or row),
    then a few roundings per element."""
    k = math.prod(x.shape[d] for d in dims)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    mean_abs = x.abs().mean(dim=dims, keepdim=True)
    mean_sq = (x * x).mean(dim=dims, keepdim=True)
    centred = y - shift  # scale·(x − mean)/σ
    # the mean's error is one number per channel/row; its effect sums dy with its sign
    d_mean = math.sqrt(k) * U * mean_abs * scale / torch.sqrt(var + eps)
    on_mean = (dy * d_mean).sum(dim=dims)
    on_var = math.sqrt(k) * U * mean_sq / (2 * (var + eps)) * (dy * centred).sum(dim=dims,
                                                                                keepdim=True)
    elementwise = 3 * U * dy.abs() * torch.maximum(y.abs(), centred.abs())
    return (on_mean ** 2).sum() + (on_var ** 2).sum() + (elementwise ** 2).sum()


def argument(args, kwargs, i, name):
    """Argument i, passed by position or, through F's torch-function handlers, by name."""
    return args[i] if len(args) > i else kwargs[name]


def batch_norm_sq(args, kwargs, y, dy):
    x, gamma, beta = args[0], argument(args, kwargs, 3, "weight"), argument(args, kwargs, 4, "bias")
    eps = argument(args, kwargs, 7, "eps")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    dims = (0,) + tuple(range(2, x.dim()))
    return stats_sq(x, y, dy, beta.view(shape), gamma.view(shape), dims, eps)


def layer_norm_sq(args, kwargs, y, dy):
    x, shape = args[0], args[1]
    gamma, beta = argument(args, kwargs, 2, "weight"), argument(args, kwargs, 3, "bias")
    eps = argument(args, kwargs, 4, "eps")
    dims = tuple(range(x.dim() - len(shape), x.dim()))
    return stats_sq(x, y, dy, beta, gamma, dims, eps)


def row_sq(args, kwargs, y, dy):
    """softmax and normalize: a sum over `dim` (sqrt(K)·u relative, positive terms) shared by
    the row, then a few roundings per element."""
    dim = kwargs.get("dim", args[1] if len(args) > 1 else -1)
    k = y.shape[dim]
    shared = math.sqrt(k) * U * (dy * y).sum(dim=dim)
    return (shared ** 2).sum() + ((6 * U * dy * y) ** 2).sum()


def reduction_sq(name, args, kwargs, y, dy):
    k = max(1, args[0].numel() // max(1, y.numel()))
    with torch.no_grad():
        terms = RECORD_FUNCS[name](args[0].abs(), *args[1:], **kwargs) if name in (
            "sum", "mean") else y.abs()
    return ((math.sqrt(k) * U * dy.abs() * terms) ** 2).sum()


def local_sq(name, args, kwargs, y, dy):
    """Σ over the output of (rounding-error bound · |∂L/∂y|)² for one operation."""
    if name in CONTRACTIONS:
        return contraction_sq(name, args, kwargs, dy)
    if name == "batch_norm":
        return batch_norm_sq(args, kwargs, y, dy)
    if name == "layer_norm":
        return layer_norm_sq(args, kwargs, y, dy)
    if name in ("softmax", "normalize"):
        return row_sq(args, kwargs, y, dy)
    if name in ("sum", "mean", "var", "std", "cross_entropy"):
        return reduction_sq(name, args, kwargs, y, dy)
    if name in ("linalg_cholesky", "cholesky_inverse"):
        # backward stable, factor of a matrix within 3% of the identity (shrinkage 64/66):
        # d·u per element, d the order
        return ((y.shape[-1] * U * dy * y) ** 2).sum()
    return ((ULPS.get(name, 2) * U * dy * y) ** 2).sum()


RECORD_FUNCS = {}


class Recorder(TorchFunctionMode):
    """Keeps every rounding operation of a forward with its arguments and output."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if (name not in EXACT and isinstance(out, torch.Tensor) and out.is_floating_point()
                and out.grad_fn is not None):
            out.retain_grad()
            RECORD_FUNCS.setdefault(name, func)
            self.ops.append((name, args, kwargs, out))
        return out


def rounding_scale(net, head, params, x):
    """Per loss part: the rounding-error scale sqrt(Σ bound²) of a float32 forward on x (module
    docstring) and the float64 gradients of that part."""
    rec = Recorder()
    with rec:
        res = forward(net, head, x)
    scales, grads = [], []
    for part in PARTS:
        for _, _, _, out in rec.ops:
            out.grad = None
        for p in params.values():
            p.grad = None
        res[part].backward(retain_graph=True)
        with torch.no_grad():
            sq = sum(float(local_sq(name, a, kw, out.detach(), out.grad))
                     for name, a, kw, out in rec.ops if out.grad is not None)
            sq += sum(float(((U * p * p.grad) ** 2).sum())
                      for p in params.values() if p.grad is not None)
        scales.append(math.sqrt(sq))
        grads.append({key: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                      for key, p in params.items()})
    return torch.tensor(scales, dtype=torch.float64), grads


# ---- the update model ----

def direction(g, m, v, t):
    """AdamW's step direction r (θ' = θ(1 − lr·wd) − lr·r) at step t for gradient g."""
    m2, v2 = BETA1 * m + (1 - BETA1) * g, BETA2 * v + (1 - BETA2) * g * g
    return (m2 / (1 - BETA1 ** t)) / (torch.sqrt(v2 / (1 - BETA2 ** t)) + EPS)


def direction_width(g, m, v, t):
    """max |r(g') − r(g)| over |g' − g| <= ETA·max|g| (per tensor), sampled at 17 points and at
    the stationary point of r (eps neglected); and the mask of the noise elements,
    |g| <= ETA·max|g|. As check C of the test computes it."""
    tol = ETA * g.abs().max()
    r = direction(g, m, v, t)
    width = torch.zeros_like(g)
    candidates = [g + tol * f for f in torch.linspace(-1, 1, 17, dtype=torch.float64)]
    a, c = BETA1 * m, 1 - BETA1
    b, d = BETA2 * v, 1 - BETA2
    safe_a = torch.where(a == 0, torch.ones_like(a), a)
    stationary = torch.where(a == 0, g, c * b / (safe_a * d))
    candidates.append(torch.clamp(stationary, g - tol, g + tol))
    for gc in candidates:
        width = torch.maximum(width, (direction(gc, m, v, t) - r).abs())
    return width, g.abs() <= tol


def kernel_rounding(g, m, v, t):
    """A bound on the float32 error of r in cl/adamw.cl (the test's kernel_rounding)."""
    m_terms = BETA1 * m.abs() + (1 - BETA1) * g.abs()
    denom = torch.sqrt((BETA2 * v + (1 - BETA2) * g * g) / (1 - BETA2 ** t)) + EPS
    return 21 * U * direction(g, m, v, t).abs() + 3 * U * m_terms / (1 - BETA1 ** t) / denom


def adamw(theta, g, m, v, t):
    return theta * (1 - LR * WD) - LR * direction(g, m, v, t)


def analyse(st, losses):
    """The fixture tensors of state e (module docstring)."""
    e, t = st["t"], st["t"] + 1
    net, head, params = build(st)
    scale_step, grads = rounding_scale(net, head, params, episode(e))
    g = grads[0]
    for key, after in st["after"].items():  # the formula is torch.optim.AdamW's
        ours = adamw(st["param"][key], g[key], st["m"][key], st["v"][key], t)
        assert (ours - after).abs().max() <= 1e-12 * (1 + after.abs().max()), key
    net, head, params = build(dict(st, param=st["after"]))
    scale_fwd, h = rounding_scale(net, head, params, episode(e + 1))
    smooth_sq, noise = torch.zeros(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)
    for key in params:
        width, is_noise = direction_width(g[key], st["m"][key], st["v"][key], t)
        width = width + kernel_rounding(g[key], st["m"][key], st["v"][key], t)
        for i in range(4):
            effect = LR * h[i][key].abs() * width
            smooth_sq[i] += (effect[~is_noise] ** 2).sum()
            noise[i] += effect[is_noise].sum()
    out = {"loss.step": losses[e], "loss.next": losses[e + 1], "scale.step": scale_step,
           "scale.next": torch.sqrt(scale_fwd ** 2 + smooth_sq), "noise.next": noise,
           "eta": torch.tensor([ETA])}
    out.update({"grad." + key: v for key, v in g.items()})
    if e:
        out.update(st["param"])
        out.update(st["buffer"])
        out.update({"adamw.m." + key: v for key, v in st["m"].items()})
        out.update({"adamw.v." + key: v for key, v in st["v"].items()})
    return out


def float32_check(st, out):
    """For the record: PyTorch float32 from the same state, against the scales."""
    e = st["t"]
    net, head, params = build(st)
    net, head32 = net.float(), {k: p.detach().float().requires_grad_() for k, p in head.items()}
    p32 = {"feature." + k: p for k, p in net.named_parameters()}
    p32.update(head32)
    opt = torch.optim.AdamW(p32.values(), lr=LR, betas=(BETA1, BETA2), eps=EPS, weight_decay=WD)
    if e:
        for key, p in p32.items():
            opt.state[p] = {"step": torch.tensor(float(e)), "exp_avg": st["m"][key].float(),
                            "exp_avg_sq": st["v"][key].float()}
    ratios = []
    for x, want, scale in ((episode(e), "loss.step", "scale.step"),
                           (episode(e + 1), "loss.next", "scale.next")):
        opt.zero_grad()
        res = head_forward(HEAD, head32, net(x.float()), CFG["variant"], CFG["vic"], True)
        got = torch.tensor([res[p].item() for p in PARTS], dtype=torch.float64)
        extra = out["noise.next"] if want == "loss.next" else 0
        ratios.append(((got - out[want]).abs() / (6 * out[scale] + extra)).max().item())
        opt.step()
    return ratios


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    states, losses = trajectory(max(STATES) + 2)
    for e in STATES:
        out = analyse(states[e], losses)
        path = os.path.join(HERE, "..", "..", "tests", "fixtures",
                            f"train_conv4_state{e:02d}.safetensors")
        meta = {"torch": torch.__version__, "config": str(CFG)}
        if e:
            meta.update({"format": "fewcl-checkpoint-1", "adamw_step": e})
        save(path, out, meta)
        r = float32_check(states[e], out)
        rel = {key: out[key][0] / out["loss." + key.split(".")[1]][0]
               for key in ("scale.step", "scale.next", "noise.next")}
        print(f"wrote {os.path.relpath(path)}: " + ", ".join(f"{k}/loss {v:.1e}"
                                                            for k, v in rel.items())
              + f"; PyTorch float32 at {r[0]:.3f} (A) and {r[1]:.3f} (B) of the tolerance")


if __name__ == "__main__":
    main()
