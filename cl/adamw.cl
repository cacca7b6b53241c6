// AdamW update, PyTorch semantics (torch.optim.AdamW, amsgrad off), in PyTorch's order:
//   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
//   p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^t.
// The scalars come from the host, computed in double, 1 − b1 and 1 − b2 too: from a float b2,
// 1.0f − 0.999f is 1.3e-5 off 0.001, which moved the step by 6e-6 of itself (PyTorch float32
// rounds the double 1 − b2 once).
kernel void adamw_step(global float *p, uint po, global const float *g, uint go,
                       global float *m, uint mo, global float *v, uint vo, uint n,
                       float decay, float b1, float b2, float one_minus_b1, float one_minus_b2,
                       float step_size, float bc2_sqrt, float eps) {
    uint i = get_global_id(0);
    if (i >= n) return;
    float gi = g[go + i];
    float mi = b1 * m[mo + i] + one_minus_b1 * gi;
    float vi = b2 * v[vo + i] + one_minus_b2 * gi * gi;
    m[mo + i] = mi;
    v[vo + i] = vi;
    float pi = p[po + i] * decay;
    p[po + i] = pi - step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
}
