"""Fixtures of the VIC column statistics and the Mahalanobis classifier
(docs/maths.md §4.4–§4.8)."""
import torch

from fixture import generator, grads, save, uniform


def colstats(outdir):
    g = generator(31)
    n, d = 30, 16  # N = n(k+1) for 5-way 5-shot
    e = uniform(g, n, d).requires_grad_()
    mean = e.mean(dim=0)
    var = e.var(dim=0)  # unbiased, as VICRegularization
    std = e.std(dim=0)
    z = (e - mean) / (std + 1e-4)
    c = z.T @ z / (n - 1 + 1e-4)
    dvar, dz, dc = uniform(g, d), uniform(g, n, d), uniform(g, d, d)
    loss = (dvar * var).sum() + (dz * z).sum() + (dc * c).sum()
    (de,) = torch.autograd.grad(loss, (e,))
    save(f"{outdir}/ops_colstats.safetensors",
         {"e": e, "mean": mean, "var": var, "std": std, "z": z, "c": c, "dvar": dvar, "dz": dz,
          "dc": dc, "de": de},
         {"torch": torch.__version__, "op": "VIC column statistics (V-B..V-D)"})


def vic(outdir):
    """VICRegularization(target_std=1.0, eps=1e-4) of V-B..V-D, variance and covariance terms."""
    g = generator(33)
    n, d, eps = 30, 16, 1e-4
    e = uniform(g, n, d)
    e[:, :4] *= 3.0  # std ~1.7: these columns sit past the variance hinge
    e.requires_grad_()
    sigma = torch.sqrt(e.var(dim=0) + eps)
    lv = torch.mean(torch.relu(1.0 - sigma - eps))
    z = (e - e.mean(dim=0)) / (e.std(dim=0) + eps)
    c = z.T @ z / (n - 1 + eps)
    lc = ((c ** 2).sum() - (torch.diagonal(c) ** 2).sum()) / (d * (d - 1) + eps)
    dlv, dlc = uniform(g, 1), uniform(g, 1)
    (de,) = torch.autograd.grad(dlv[0] * lv + dlc[0] * lc, (e,))
    save(f"{outdir}/ops_vic.safetensors",
         {"e": e, "lv": lv.reshape(1), "lc": lc.reshape(1), "dlv": dlv, "dlc": dlc, "de": de},
         {"torch": torch.__version__, "op": "VICRegularization variance + covariance (V-B..V-D)"})


FAMILIES = {"colstats": colstats, "vic": vic}


def mahalanobis_logits(supports, prototypes, queries, eps=1e-4):
    """V-D's MahalanobisClassifier(shrinkage_alpha=None, eps=1e-4) as docs/maths.md §4.4 states
    it: per class the plain-mean covariance with divisor k-1+eps, adaptive shrinkage
    alpha = D/(k+D) added on the diagonal, Cholesky + cholesky_inverse, logits = -dist."""
    n, k, d = supports.shape
    alpha = d / (k + d)
    cols = []
    for c in range(n):
        e = supports[c]
        x = e - e.mean(dim=0, keepdim=True)
        s = x.T @ x / (k - 1 + eps)
        sigma = (1 - alpha) * s
        sigma = sigma + alpha * torch.eye(d, device=s.device)
        inv = torch.cholesky_inverse(torch.linalg.cholesky(sigma))
        diff = queries - prototypes[c]
        cols.append(((diff @ inv) * diff).sum(dim=1))
    return -torch.stack(cols, dim=1)


def mahalanobis(outdir):
    g = generator(32)
    n, k, d, q = 5, 5, 16, 10
    supports = uniform(g, n, k, d).requires_grad_()
    prototypes = uniform(g, n, d, lo=-0.5, hi=0.5).requires_grad_()
    queries = uniform(g, q, d).requires_grad_()
    logits = mahalanobis_logits(supports, prototypes, queries)
    dlogits = uniform(g, q, n)
    ds, dp, dq = grads(logits, dlogits, supports, prototypes, queries)
    save(f"{outdir}/ops_mahalanobis.safetensors",
         {"supports": supports, "prototypes": prototypes, "queries": queries, "logits": logits,
          "dlogits": dlogits, "dsupports": ds, "dprototypes": dp, "dqueries": dq},
         {"torch": torch.__version__,
          "op": "MahalanobisClassifier (V-D): cholesky + cholesky_inverse, logits -dist"})


FAMILIES["mahalanobis"] = mahalanobis
