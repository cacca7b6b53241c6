"""Fixture of the AdamW step: torch.optim.AdamW for three steps with given gradients."""
import torch

from fixture import generator, save, uniform


def adamw(outdir):
    g = generator(7)
    p0 = uniform(g, 4, 9)
    grads = [uniform(g, 4, 9) for _ in range(3)]
    p = torch.nn.Parameter(p0.clone())
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    out = {"p0": p0}
    for t, gr in enumerate(grads, 1):
        p.grad = gr.clone()
        opt.step()
        out[f"g{t}"] = gr
        out[f"p{t}"] = p.detach().clone()
    save(f"{outdir}/ops_adamw.safetensors", out,
         {"torch": torch.__version__, "op": "optim.AdamW lr=1e-2 wd=0.05 betas=0.9,0.999 eps=1e-8"})


FAMILIES = {"adamw": adamw}
