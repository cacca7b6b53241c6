"""Fixtures of the normalisation families: batchnorm, rowwise (layernorm, GELU, L2-normalise,
softmax) and loss (cross-entropy, accuracy)."""
import torch
import torch.nn.functional as F

from fixture import generator, grads, save, uniform


def batchnorm(outdir):
    g = generator(3)
    n, c, h, w = 3, 4, 5, 5
    x = (uniform(g, n, c, h, w, lo=-2.0, hi=3.0)).requires_grad_()
    gamma = uniform(g, c, lo=0.5, hi=1.5).requires_grad_()
    beta = uniform(g, c, lo=-0.5, hi=0.5).requires_grad_()
    rm0 = uniform(g, c, lo=-0.2, hi=0.2)
    rv0 = uniform(g, c, lo=0.5, hi=1.5)
    dy = uniform(g, n, c, h, w)
    rm, rv = rm0.clone(), rv0.clone()
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=0.1, eps=1e-5)
    dx, dgamma, dbeta = grads(y, dy, x, gamma, beta)
    ye = F.batch_norm(x, rm0, rv0, gamma, beta, training=False, eps=1e-5)
    dxe, dgammae, dbetae = grads(ye, dy, x, gamma, beta)
    save(f"{outdir}/ops_batchnorm.safetensors",
         {"x": x, "gamma": gamma, "beta": beta, "running_mean": rm0, "running_var": rv0,
          "dy": dy, "y": y, "running_mean_after": rm, "running_var_after": rv, "dx": dx,
          "dgamma": dgamma, "dbeta": dbeta, "y_eval": ye, "dx_eval": dxe,
          "dgamma_eval": dgammae, "dbeta_eval": dbetae},
         {"torch": torch.__version__, "op": "F.batch_norm momentum 0.1 eps 1e-5"})


def rowwise(outdir):
    g = generator(4)
    t = {}
    x = uniform(g, 4, 37, lo=-2.0, hi=3.0).requires_grad_()
    lw = uniform(g, 37, lo=0.5, hi=1.5).requires_grad_()
    lb = uniform(g, 37, lo=-0.5, hi=0.5).requires_grad_()
    dy = uniform(g, 4, 37)
    y = F.layer_norm(x, (37,), lw, lb, eps=1e-5)
    t.update(ln_x=x, ln_w=lw, ln_b=lb, ln_dy=dy, ln_y=y)
    t["ln_dx"], t["ln_dw"], t["ln_db"] = grads(y, dy, x, lw, lb)

    x = uniform(g, 3, 5, 7, lo=-4.0, hi=4.0).requires_grad_()
    dy = uniform(g, 3, 5, 7)
    y = F.gelu(x)
    t.update(gelu_x=x, gelu_dy=dy, gelu_y=y)
    (t["gelu_dx"],) = grads(y, dy, x)

    x = uniform(g, 5, 9)
    x[3] = 0.0          # zero row: clamped, y = 0, dx = dy/1e-12
    x[4] = x[4] * 1e-14  # norm below 1e-12: clamped
    x.requires_grad_()
    dy = uniform(g, 5, 9)
    y = F.normalize(x, p=2.0, dim=-1, eps=1e-12)
    t.update(l2_x=x, l2_dy=dy, l2_y=y)
    (t["l2_dx"],) = grads(y, dy, x)

    x = uniform(g, 4, 11, lo=-6.0, hi=6.0).requires_grad_()
    dy = uniform(g, 4, 11)
    y = F.softmax(x * 0.125, dim=-1)
    t.update(sm_x=x, sm_dy=dy, sm_y=y)
    (t["sm_dx"],) = grads(y, dy, x)
    save(f"{outdir}/ops_rowwise.safetensors", t,
         {"torch": torch.__version__,
          "op": "F.layer_norm eps 1e-5; F.gelu exact; F.normalize eps 1e-12; F.softmax(0.125 x)"})


def loss(outdir):
    g = generator(5)
    rows, k = 7, 5
    logits = uniform(g, rows, k, lo=-3.0, hi=3.0)
    logits[2] = torch.tensor([1.0, 2.5, -1.0, 2.5, 0.0])  # tie: argmax takes the first (1)
    logits[5] = logits[5] + 40.0                         # large logits: needs a stable lse
    logits.requires_grad_()
    labels = torch.tensor([0, 1, 3, 4, 2, 1, 3])
    loss = F.cross_entropy(logits, labels)
    dloss = torch.tensor(0.7)
    (dlogits,) = grads(loss, dloss, logits)
    correct = (logits.argmax(dim=1) == labels).sum().float()
    save(f"{outdir}/ops_loss.safetensors",
         {"logits": logits, "labels": labels.float(), "loss": loss.reshape(1),
          "dloss": dloss.reshape(1), "dlogits": dlogits, "correct": correct.reshape(1)},
         {"torch": torch.__version__, "op": "F.cross_entropy mean; argmax accuracy"})


FAMILIES = {"batchnorm": batchnorm, "rowwise": rowwise, "loss": loss}
