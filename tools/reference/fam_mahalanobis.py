"""Fixtures of the VIC column statistics and the Mahalanobis classifier (fsct-reference §3.4-3.5)."""
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


FAMILIES = {"colstats": colstats}
