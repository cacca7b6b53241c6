"""What float32 rounding can do to the gradients of a ReLU / max-pool network beyond its smooth
error (tools/reference/episode.py's eflip and enoise; derived from the float64 truth alone).

Branch decisions. A ReLU whose input lies within float32's forward error of zero, or a max-pool
window whose two largest inputs lie that close, may go the other way in any float32
implementation; the gradient is discontinuous there. Flipping one ReLU changes the gradient
flowing back through that element by its full value dy; flipping a max-pool window moves dy
from the winner to the runner-up. Each flip's effect on every parameter gradient is one
backward pass from the decision's input (autograd.grad with that one-element change as the
cotangent); the bound is the sum of the absolute effects over every candidate (all flipping
the worst way at once). Candidates: margin below DELTA times the layer's mean |input|, with
DELTA = 4·u·sqrt(Σ K) over the forward's convolutions (u = 2^-24): a K-term dot product of
random-sign terms, summed in any order, rounds to within about sqrt(K)·u of its typical
output (its partial sums grow like a random walk; Higham and Mary, SIAM J. Sci. Comput. 2019),
BatchNorm keeps relative errors, independent errors of successive layers add in quadrature,
and 4 is the multiple of that scale allowed. The generator checks that every ReLU a PyTorch
float32 run takes the other way lies inside the window.

Exactly-zero gradients. A convolution bias in front of training-mode BatchNorm has a true
gradient of 0 (BatchNorm removes the channel mean), so a float32 one is pure rounding noise:
the sum over the channel's K = N·H·W elements of dz = (γ/σ)(dy − mean dy − n·mean(dy·n)), each
known to a few u of its terms, with the means' errors shared by all K. Bound per channel:
4·sqrt(K)·u·(|γ|/σ)·Σ(|dy| + |mean dy| + |n|·|mean(dy·n)|).
"""
import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

U = 2.0 ** -24
LAMBDA = 4


class Recorder(TorchFunctionMode):
    """Records, during a forward, the ReLU and max-pool calls (their outputs' gradients kept),
    the summed K of the convolutions, and each convolution bias that feeds a BatchNorm."""

    def __init__(self):
        super().__init__()
        self.decisions, self.conv_k, self.zero_bias = [], 0, []
        self._conv = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "relu" and kwargs.get("inplace"):
            kwargs["inplace"] = False  # keep the input (torchvision's ReLUs are in place)
        out = func(*args, **kwargs)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            return out
        if name in ("relu", "max_pool2d"):
            out.retain_grad()
            self.decisions.append((name, args, kwargs, out))
        elif name == "conv2d":
            self.conv_k += args[1][0].numel()
            if len(args) > 2 and args[2] is not None:
                self._conv[id(out)] = (out, args[2])
        elif name == "batch_norm" and id(args[0]) in self._conv:
            x, bias = self._conv.pop(id(args[0]))
            out.retain_grad()
            self.zero_bias.append((bias, x, kwargs["weight"], kwargs["eps"], out))
        return out

    def delta(self):
        return LAMBDA * U * math.sqrt(self.conv_k)


class ReluInputs(TorchFunctionMode):
    """Records the input of every ReLU whose output takes part in the backward."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        before = args[0].detach().clone() if getattr(func, "__name__", "") == "relu" else None
        out = func(*args, **(kwargs or {}))
        if before is not None and out.requires_grad:
            self.inputs.append(before)
        return out


def relu_flips_outside(rec, inputs32):
    """The ReLUs a float32 run (ReluInputs of the same forward) takes the other way: how many,
    and the largest float64 margin among them in units of the window."""
    count, worst = 0, 0.0
    mine = [(args[0].detach(), out) for name, args, _, out in rec.decisions if name == "relu"]
    for (x, _), x32 in zip(mine, inputs32):
        flipped = (x > 0) != (x32.double() > 0)
        count += int(flipped.sum())
        if flipped.any():
            worst = max(worst, float((x.abs() / x.abs().mean())[flipped].max()) / rec.delta())
    return count, worst


def pool_geometry(args, kwargs):
    def arg(i, key, default):
        v = args[i] if len(args) > i else kwargs.get(key, default)
        return v if isinstance(v, int) else (v[0] if v else default)
    k = arg(1, "kernel_size", None)
    return k, arg(2, "stride", k) or k, arg(3, "padding", 0)


def relu_flips(x, dy, delta):
    """One cotangent per ReLU input within delta·mean|x| of zero: dy at that element."""
    near = (x.abs() < delta * x.abs().mean()).nonzero()
    for i in near:
        c = torch.zeros_like(x)
        c[tuple(i)] = dy[tuple(i)]
        yield c


def pool_flips(x, dy, delta, k, s, pad):
    """One cotangent per max-pool window whose two largest (positive) inputs lie within
    delta·mean|x|: dy moved from the winner to the runner-up."""
    windows = F.pad(x, (pad, pad, pad, pad), value=-math.inf).unfold(2, k, s).unfold(3, k, s)
    top = windows.reshape(*windows.shape[:4], k * k).topk(2, dim=-1)
    gap = top.values[..., 0] - top.values[..., 1]
    near = ((gap < delta * x.abs().mean()) & (top.values[..., 0] > 0)).nonzero()
    for b, ch, h, w in near.tolist():
        c = torch.zeros_like(x)
        for t, sign in zip(top.indices[b, ch, h, w].tolist(), (-1, 1)):
            c[b, ch, h * s + t // k - pad, w * s + t % k - pad] += sign * dy[b, ch, h, w]
        yield c


def flip_bounds(rec, params):
    """Per parameter, Σ over candidate flips of |its effect on the gradient|; and the count.
    The graph of the recorded forward must still be alive (backward with retain_graph)."""
    bound = {key: torch.zeros_like(p) for key, p in params.items()}
    keys, tensors, count = list(params), list(params.values()), 0
    delta = rec.delta()
    for name, args, kwargs, out in rec.decisions:
        x = args[0]
        xd, dy = x.detach(), out.grad
        if dy is None:
            continue
        flips = relu_flips(xd, dy, delta) if name == "relu" else pool_flips(
            xd, dy, delta, *pool_geometry(args, kwargs))
        for c in flips:
            grads = torch.autograd.grad(x, tensors, grad_outputs=c, retain_graph=True,
                                        allow_unused=True)
            for key, g in zip(keys, grads):
                if g is not None:
                    bound[key] += g.abs()
            count += 1
    return bound, count


def zero_bias_bounds(rec, params):
    """Per convolution bias in front of BatchNorm (by parameter key): the per-channel bound on
    its float32 rounding noise (module docstring)."""
    names = {id(p): key for key, p in params.items()}
    out = {}
    for bias, x, gamma, eps, y in rec.zero_bias:
        if id(bias) not in names or y.grad is None:
            continue
        dims = (0, 2, 3)
        xd, dy = x.detach(), y.grad
        k = xd.numel() // xd.shape[1]
        mean = xd.mean(dim=dims, keepdim=True)
        sd = torch.sqrt(xd.var(dim=dims, unbiased=False, keepdim=True) + eps)
        n = (xd - mean) / sd
        m_dy = dy.mean(dim=dims, keepdim=True)
        m_dyn = (dy * n).mean(dim=dims, keepdim=True)
        terms = (dy.abs() + m_dy.abs() + n.abs() * m_dyn.abs()).sum(dim=dims)
        scale = gamma.detach().abs() / sd.flatten()
        out[names[id(bias)]] = LAMBDA * math.sqrt(k) * U * scale * terms
    return out
