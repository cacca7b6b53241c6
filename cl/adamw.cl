// AdamW update, PyTorch semantics (torch.optim.AdamW, amsgrad off), in PyTorch's order:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^t.
// The step-dependent scalars come from the host, computed in double.
kernel void adamw_step(global float *p, uint po, global const float *g, uint go,
                       global float *m, uint mo, global float *v, uint vo, uint n,
                       float decay, float b1, float b2, float step_size, float bc2_sqrt,
                       float eps) {
    uint i = get_global_id(0);
    if (i >= n) return;
    float gi = g[go + i];
    float mi = b1 * m[mo + i] + (1.0f - b1) * gi;
    float vi = b2 * v[vo + i] + (1.0f - b2) * gi * gi;
    m[mo + i] = mi;
    v[vo + i] = vi;
    float pi = p[po + i] * decay;
    p[po + i] = pi - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
}
