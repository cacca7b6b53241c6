// Column statistics of a matrix E [N,D] (the VIC losses, docs/maths.md §4.8).
// One work-item per column walks the N rows in order: adjacent work-items read adjacent
// addresses, and every sum has a fixed order, so results are deterministic.

// mean_j = Σ_i E_ij / N; var_j = Σ_i (E_ij − mean_j)² / (N − 1) (unbiased, two passes so that
// large means do not cancel); std_j = √var_j; z_ij = (E_ij − mean_j) / (std_j + eps).
kernel void col_forward(global const float *e, uint eo, global float *mean, uint mo,
                        global float *var, uint vo, global float *sd, uint so, global float *z,
                        uint zo, uint rows, uint cols, float eps) {
    uint j = get_global_id(0);
    if (j >= cols) return;
    float s = 0.0f;
    for (uint i = 0; i < rows; i++) s += e[eo + i * cols + j];
    float m = s / (float)rows;
    float q = 0.0f;
    for (uint i = 0; i < rows; i++) {
        float d = e[eo + i * cols + j] - m;
        q += d * d;
    }
    float v = q / (float)(rows - 1);
    float st = sqrt(v);
    mean[mo + j] = m;
    var[vo + j] = v;
    sd[so + j] = st;
    float inv = 1.0f / (st + eps);
    for (uint i = 0; i < rows; i++) z[zo + i * cols + j] = (e[eo + i * cols + j] - m) * inv;
}

// Backward of col_forward for the gradients of mean, var, std and z together (flags say which
// are present). With x = E − mean, d = std + eps, g = dz:
//   dx = g/d;  dstd += −Σ_i g·z / d;  dvar += dstd / (2·std) (0 where std = 0);
//   dE = dx − mean_i(dx) + dvar·2x/(N−1) + dmean/N.
kernel void col_backward(global const float *e, uint eo, global const float *mean, uint mo,
                         global const float *sd, uint so, global const float *z, uint zo,
                         global const float *dmean, uint dmo, global const float *dvar, uint dvo,
                         global const float *dsd, uint dso, global const float *dz, uint dzo,
                         global float *de, uint deo, uint rows, uint cols, float eps,
                         uint present) {
    uint j = get_global_id(0);
    if (j >= cols) return;
    float st = sd[so + j], d = st + eps, m = mean[mo + j];
    float gm = (present & 1u) ? dmean[dmo + j] : 0.0f;
    float gv = (present & 2u) ? dvar[dvo + j] : 0.0f;
    float gs = (present & 4u) ? dsd[dso + j] : 0.0f;
    float sum_dx = 0.0f;
    if (present & 8u) {
        float gz = 0.0f, sg = 0.0f;
        for (uint i = 0; i < rows; i++) {
            float g = dz[dzo + i * cols + j];
            sg += g;
            gz += g * z[zo + i * cols + j];
        }
        gs -= gz / d;
        sum_dx = sg / d;
    }
    // A constant column (std 0, e.g. a feature ReLU zeroed for every row) gets no gradient
    // through the std, as PyTorch's std_backward masks result == 0 (else 0/0 = NaN here).
    if ((present & 12u) && st > 0.0f) gv += gs / (2.0f * st);
    float shift = gm / (float)rows - sum_dx / (float)rows;
    float vs = gv * 2.0f / (float)(rows - 1);
    for (uint i = 0; i < rows; i++) {
        float x = e[eo + i * cols + j] - m;
        float dx = (present & 8u) ? dz[dzo + i * cols + j] / d : 0.0f;
        de[deo + i * cols + j] = dx + shift + vs * x;
    }
}

// One work-group sums the terms i in [first, end) into out[oo] (+)= scale·Σ (strided partial
// sums, then a tree in local memory: a fixed order); launches after the first (first > 0) add
// to out. The terms are the VIC weights below.
#define GROUP_SUM(TERM)                                                                        \
    uint lid = get_local_id(0), lsz = get_local_size(0);                                      \
    float s = 0.0f;                                                                            \
    for (uint i = first + lid; i < end; i += lsz) s += TERM;                                   \
    part[lid] = s;                                                                             \
    for (uint w = lsz / 2; w > 0; w /= 2) {                                                    \
        barrier(CLK_LOCAL_MEM_FENCE);                                                          \
        if (lid < w) part[lid] += part[lid + w];                                               \
    }                                                                                          \
    if (lid == 0) out[oo] = (first > 0 ? out[oo] : 0.0f) + part[0] * scale;

// hinge_j = max(0, 1 − √(var_j + eps) − eps)
float vic_hinge(float v, float eps) { return fmax(0.0f, 1.0f - sqrt(v + eps) - eps); }

// L_V = (1/D) Σ_j hinge_j
kernel void vic_var_loss(global const float *var, uint vo, global float *out, uint oo, uint first,
                         uint end, float eps, float scale, local float *part) {
    GROUP_SUM(vic_hinge(var[vo + i], eps))
}

// dvar_j = dL·(1/D)·(−1/(2√(var_j+eps))) where the hinge is active (PyTorch: relu' = 0 at 0).
kernel void vic_var_loss_backward(global const float *var, uint vo, global const float *dl,
                                  uint dlo, global float *dvar, uint dvo, uint n, float eps,
                                  float scale) {
    uint j = get_global_id(0);
    if (j >= n) return;
    float sd = sqrt(var[vo + j] + eps);
    dvar[dvo + j] = (1.0f - sd - eps > 0.0f) ? -dl[dlo] * scale * 0.5f / sd : 0.0f;
}

// L_C = (Σ_ij C_ij² − Σ_i C_ii²)·scale with scale = 1/(D(D−1) + eps): off-diagonal squares.
kernel void vic_cov_loss(global const float *c, uint co, global float *out, uint oo, uint first,
                         uint end, uint d, float scale, local float *part) {
    GROUP_SUM((i / d == i % d) ? 0.0f : c[co + i] * c[co + i])
}

// dC_ij = dL·2·C_ij·scale off the diagonal, 0 on it.
kernel void vic_cov_loss_backward(global const float *c, uint co, global const float *dl, uint dlo,
                                  global float *dc, uint dco, uint n, uint d, float scale) {
    uint i = get_global_id(0);
    if (i >= n) return;
    dc[dco + i] = (i / d == i % d) ? 0.0f : 2.0f * dl[dlo] * scale * c[co + i];
}
