// Row-wise ops over the last dimension: layer normalisation, L2 normalisation, softmax
// (one work-group per row, looping over the row so any width works), and GELU
// (elementwise). Reductions combine per-item partial sums (item l takes columns l, l+wg, ...)
// with a tree in local memory: a fixed order, so results are deterministic. Work-group sizes
// are powers of two (fcl_wg_1d).

// ---- layer norm: y = (x − mean)·rstd·gamma + beta, rstd = 1/√(var + eps), biased var ----

kernel void ln_forward(global const float *x, uint xo, global const float *gamma, uint go,
                       global const float *beta, uint bo, global float *y, uint yo,
                       global float *mean_out, uint mo, global float *rstd_out, uint ro, uint rows,
                       uint cols, float eps, local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return; // whole groups: barriers stay uniform
    uint bx = xo + r * cols, by = yo + r * cols;
    float s = 0.0f;
    for (uint j = l; j < cols; j += wg) s += x[bx + j];
    float mean = group_sum(s, scratch) / (float)cols;
    s = 0.0f;
    for (uint j = l; j < cols; j += wg) {
        float d = x[bx + j] - mean; // two passes: no cancellation in E[x²] − mean²
        s += d * d;
    }
    float rstd = 1.0f / sqrt(group_sum(s, scratch) / (float)cols + eps);
    for (uint j = l; j < cols; j += wg)
        y[by + j] = (x[bx + j] - mean) * rstd * gamma[go + j] + beta[bo + j];
    if (l == 0) {
        mean_out[mo + r] = mean;
        rstd_out[ro + r] = rstd;
    }
}

// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·gamma, x̂ = (x − mean)·rstd.
// dx may alias dy: each item reads its dy[j] before writing dx[j].
kernel void ln_backward_dx(global const float *x, uint xo, global const float *gamma, uint go,
                           global const float *mean_in, uint mo, global const float *rstd_in,
                           uint ro, global const float *dy, uint dyo, global float *dx, uint dxo,
                           uint rows, uint cols, local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return;
    uint bx = xo + r * cols, bd = dyo + r * cols, bo = dxo + r * cols;
    float mean = mean_in[mo + r], rstd = rstd_in[ro + r];
    float sg = 0.0f, sgx = 0.0f;
    for (uint j = l; j < cols; j += wg) {
        float g = dy[bd + j] * gamma[go + j];
        sg += g;
        sgx += g * (x[bx + j] - mean) * rstd;
    }
    float mg = group_sum(sg, scratch) / (float)cols;
    float mgx = group_sum(sgx, scratch) / (float)cols;
    for (uint j = l; j < cols; j += wg) {
        float g = dy[bd + j] * gamma[go + j];
        dx[bo + j] = rstd * (g - mg - (x[bx + j] - mean) * rstd * mgx);
    }
}

// dgamma[j] += Σ_r dy[r,j]·x̂[r,j], dbeta[j] += Σ_r dy[r,j]: one item per column walks the
// rows in order (adjacent items read adjacent addresses).
kernel void ln_param_grads(global const float *x, uint xo, global const float *mean_in, uint mo,
                           global const float *rstd_in, uint ro, global const float *dy, uint dyo,
                           global float *dgamma, uint dgo, global float *dbeta, uint dbo,
                           uint rows, uint cols) {
    uint j = get_global_id(0);
    if (j >= cols) return;
    float sg = 0.0f, sb = 0.0f;
    for (uint r = 0; r < rows; r++) {
        float g = dy[dyo + r * cols + j];
        sb += g;
        sg += g * (x[xo + r * cols + j] - mean_in[mo + r]) * rstd_in[ro + r];
    }
    dgamma[dgo + j] += sg;
    dbeta[dbo + j] += sb;
}

// ---- GELU, exact: y = x·Φ(x) = x/2·(1 + erf(x/√2)); dy/dx = Φ(x) + x·φ(x) ----------------

kernel void gelu_forward(global const float *x, uint xo, global float *y, uint yo, uint n) {
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = x[xo + i];
    y[yo + i] = 0.5f * v * (1.0f + erf(v * M_SQRT1_2_F));
}

kernel void gelu_backward(global const float *x, uint xo, global const float *dy, uint dyo,
                          global float *dx, uint dxo, uint n) {
    uint i = get_global_id(0);
    if (i >= n) return;
    float v = x[xo + i];
    float cdf = 0.5f * (1.0f + erf(v * M_SQRT1_2_F));
    float pdf = exp(-0.5f * v * v) * (M_2_SQRTPI_F * M_SQRT1_2_F * 0.5f); // 1/√(2π)
    dx[dxo + i] = dy[dyo + i] * (cdf + v * pdf);
}

// ---- L2 normalisation: y = x / max(‖x‖, eps) (F.normalize) ------------------------------

kernel void l2n_forward(global const float *x, uint xo, global float *y, uint yo, uint rows,
                        uint cols, float eps, local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return;
    uint bx = xo + r * cols, by = yo + r * cols;
    float s = 0.0f;
    for (uint j = l; j < cols; j += wg) s += x[bx + j] * x[bx + j];
    float d = fmax(sqrt(group_sum(s, scratch)), eps);
    for (uint j = l; j < cols; j += wg) y[by + j] = x[bx + j] / d;
}

// With n = ‖x‖: when n ≥ eps, y = x/n and dx = (dy − y·⟨y,dy⟩)/n; when n < eps the
// denominator is the constant eps (clamp_min passes no gradient below eps): dx = dy/eps.
// dx may alias dy.
kernel void l2n_backward(global const float *x, uint xo, global const float *dy, uint dyo,
                         global float *dx, uint dxo, uint rows, uint cols, float eps,
                         local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return;
    uint bx = xo + r * cols, bd = dyo + r * cols, bo = dxo + r * cols;
    float s = 0.0f, p = 0.0f;
    for (uint j = l; j < cols; j += wg) {
        s += x[bx + j] * x[bx + j];
        p += x[bx + j] * dy[bd + j];
    }
    float n = sqrt(group_sum(s, scratch));
    float xdy = group_sum(p, scratch);
    if (n >= eps) {
        float k = xdy / (n * n); // ⟨y,dy⟩/n = ⟨x,dy⟩/n²
        for (uint j = l; j < cols; j += wg) dx[bo + j] = (dy[bd + j] - x[bx + j] * k) / n;
    } else {
        for (uint j = l; j < cols; j += wg) dx[bo + j] = dy[bd + j] / eps;
    }
}

// ---- softmax of scale·x over a row, stable: exp(s·x − max(s·x)) / Σ -------------------

kernel void sm_forward(global const float *x, uint xo, global float *y, uint yo, uint rows,
                       uint cols, float scale, local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return;
    uint bx = xo + r * cols, by = yo + r * cols;
    float m = -INFINITY;
    for (uint j = l; j < cols; j += wg) m = fmax(m, scale * x[bx + j]);
    m = group_max(m, scratch);
    float s = 0.0f;
    for (uint j = l; j < cols; j += wg) s += exp(scale * x[bx + j] - m);
    float inv = 1.0f / group_sum(s, scratch);
    for (uint j = l; j < cols; j += wg) y[by + j] = exp(scale * x[bx + j] - m) * inv;
}

// From the output: dx = scale·y·(dy − ⟨y,dy⟩). dx may alias dy.
kernel void sm_backward(global const float *y, uint yo, global const float *dy, uint dyo,
                        global float *dx, uint dxo, uint rows, uint cols, float scale,
                        local float *scratch) {
    uint r = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (r >= rows) return;
    uint by = yo + r * cols, bd = dyo + r * cols, bo = dxo + r * cols;
    float p = 0.0f;
    for (uint j = l; j < cols; j += wg) p += y[by + j] * dy[bd + j];
    p = group_sum(p, scratch);
    for (uint j = l; j < cols; j += wg) dx[bo + j] = scale * y[by + j] * (dy[bd + j] - p);
}
