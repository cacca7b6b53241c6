// Kernels of the original FS-CT head (lib/nn/fsct.c, docs/maths.md §5.2, §5.3): the query rows of a
// class-major episode, the cross-attention between prototypes (q) and query images (k = v)
// with its backward, and CosineDistLinear (normalisation over the class axis, WeightNorm).
//
// Shapes: Q query rows r = c·q + j, n classes, H heads of dh features (I = H·dh, feature
// f = h·dh + e). The q input holds one row per class (shared by every query: the first block)
// or one per (r, c) pair (later blocks); `shared_q` selects its row c or r·n + c.

// dst[r, f] = src[(c·(k+q) + k + j)·D + f], r = c·q + j.
kernel void gather_queries(global const float *src, uint so, global float *dst, uint dsto,
                           uint rows, uint D, uint k, uint q) {
    uint f = get_global_id(0), r = get_global_id(1);
    if (f >= D || r >= rows) return;
    uint c = r / q, j = r % q;
    dst[dsto + r * D + f] = src[so + (c * (k + q) + k + j) * D + f];
}

// The reverse: dst[(c·(k+q) + k + j)·D + f] = src[r, f] (support rows untouched).
kernel void scatter_queries(global const float *src, uint so, global float *dst, uint dsto,
                            uint rows, uint D, uint k, uint q) {
    uint f = get_global_id(0), r = get_global_id(1);
    if (f >= D || r >= rows) return;
    uint c = r / q, j = r % q;
    dst[dsto + (c * (k + q) + k + j) * D + f] = src[so + r * D + f];
}

// y[i, j] += x[j]: the first block's residual, prototypes broadcast over the queries.
kernel void add_broadcast_rows(global const float *x, uint xo, global float *y, uint yo,
                               uint rows, uint cols) {
    uint j = get_global_id(0), i = get_global_id(1);
    if (i < rows && j < cols) y[yo + i * cols + j] += x[xo + j];
}

// A[r,c,h] = ⟨Fq[·,c,h], Fk[r,h]⟩ / (‖Fq[·,c,h]‖·‖Fk[r,h]‖): the dot product and the product
// of the norms, divided, with no ε (as the reference). One work-item per (r, c, h).
kernel void attn_cos_scores(global const float *fq, uint fqo, global const float *fk, uint fko,
                            global float *a, uint ao, uint Q, uint n, uint H, uint dh,
                            int shared_q) {
    uint i = get_global_id(0);
    if (i >= Q * n * H) return;
    uint h = i % H, rc = i / H, c = rc % n, r = rc / n, I = H * dh;
    uint xq = fqo + (shared_q ? c : rc) * I + h * dh, xk = fko + r * I + h * dh;
    float dot = 0.0f, qq = 0.0f, kk = 0.0f;
    for (uint e = 0; e < dh; e++) {
        float u = fq[xq + e], v = fk[xk + e];
        dot += u * v;
        qq += u * u;
        kk += v * v;
    }
    a[ao + i] = dot / (sqrt(qq) * sqrt(kk));
}

// O[r,c,f] = A[r,c,f/dh]·Fv[r,f] (cosine), or Fv[r,f] (softmax: the softmax over the singleton
// key axis is identically 1, so the prototypes do not enter). Heads merged head-major.
kernel void attn_mix(global const float *a, uint ao, global const float *fv, uint fvo,
                     global float *o, uint oo, uint Q, uint n, uint H, uint dh, int cosine) {
    uint f = get_global_id(0), rc = get_global_id(1), I = H * dh;
    if (f >= I || rc >= Q * n) return;
    float v = fv[fvo + (rc / n) * I + f];
    o[oo + rc * I + f] = cosine ? a[ao + rc * H + f / dh] * v : v;
}

// Backward of A per (r, c, h). With dA = Σ_e dO[r,c,h,e]·Fv[r,h,e] and A = ⟨u,v⟩/(‖u‖‖v‖):
//   ∂A/∂u = v/(‖u‖‖v‖) − A·u/‖u‖²,  ∂A/∂v = u/(‖u‖‖v‖) − A·v/‖v‖².
// coef[3i..3i+2] = dA/(‖u‖‖v‖), dA·A/‖u‖², dA·A/‖v‖² (u = Fq row, v = Fk row, Fk = Fv).
kernel void attn_cos_coeffs(global const float *fq, uint fqo, global const float *fk, uint fko,
                            global const float *dout, uint doo, global float *coef, uint co,
                            uint Q, uint n, uint H, uint dh, int shared_q) {
    uint i = get_global_id(0);
    if (i >= Q * n * H) return;
    uint h = i % H, rc = i / H, c = rc % n, r = rc / n, I = H * dh;
    uint xq = fqo + (shared_q ? c : rc) * I + h * dh, xk = fko + r * I + h * dh;
    uint xd = doo + rc * I + h * dh;
    float dot = 0.0f, qq = 0.0f, kk = 0.0f, da = 0.0f;
    for (uint e = 0; e < dh; e++) {
        float u = fq[xq + e], v = fk[xk + e];
        dot += u * v;
        qq += u * u;
        kk += v * v;
        da += dout[xd + e] * v;
    }
    float nq = sqrt(qq), nk = sqrt(kk);
    float a = dot / (nq * nk);
    coef[co + 3 * i] = da / (nq * nk);
    coef[co + 3 * i + 1] = da * a / qq;
    coef[co + 3 * i + 2] = da * a / kk;
}

// dFq[r,c,f] = coef0·Fk[r,f] − coef1·Fq[·,c,f] for every (r, c) pair; the first block sums it
// over r afterwards (its q rows are shared).
kernel void attn_cos_dq(global const float *coef, uint co, global const float *fq, uint fqo,
                        global const float *fk, uint fko, global float *dfq, uint dqo, uint Q,
                        uint n, uint H, uint dh, int shared_q) {
    uint f = get_global_id(0), rc = get_global_id(1), I = H * dh;
    if (f >= I || rc >= Q * n) return;
    uint r = rc / n, c = rc % n, i = rc * H + f / dh;
    float u = fq[fqo + (shared_q ? c : rc) * I + f];
    dfq[dqo + rc * I + f] = coef[co + 3 * i] * fk[fko + r * I + f] - coef[co + 3 * i + 1] * u;
}

// dFk[r,f] (+)= Σ_c over the n prototypes, in order: as value A·dO, and as key
// coef0·Fq − coef2·Fk (cosine); or Σ_c dO (softmax). One work-item per (r, f).
kernel void attn_dk(global const float *a, uint ao, global const float *fq, uint fqo,
                    global const float *fk, uint fko, global const float *dout, uint doo,
                    global const float *coef, uint co, global float *dfk, uint dko, uint Q,
                    uint n, uint H, uint dh, int shared_q, int cosine, int accumulate) {
    uint f = get_global_id(0), r = get_global_id(1), I = H * dh;
    if (f >= I || r >= Q) return;
    uint h = f / dh;
    float v = fk[fko + r * I + f], s = 0.0f;
    for (uint c = 0; c < n; c++) {
        uint rc = r * n + c;
        float g = dout[doo + rc * I + f];
        if (cosine) {
            uint i = rc * H + h;
            float u = fq[fqo + (shared_q ? c : rc) * I + f];
            s += a[ao + i] * g + coef[co + 3 * i] * u - coef[co + 3 * i + 2] * v;
        } else {
            s += g;
        }
    }
    dfk[dko + r * I + f] = accumulate ? dfk[dko + r * I + f] + s : s;
}

// CosineDistLinear's input normalisation over the class axis of Y [Q, n, F]:
// Ŷ[r,c,f] = Y[r,c,f] / (√(Σ_c′ Y[r,c′,f]²) + 1e-5). One work-item per (r, f).
kernel void classnorm_forward(global const float *y, uint yo, global float *yhat, uint ho, uint Q,
                              uint n, uint F) {
    uint f = get_global_id(0), r = get_global_id(1);
    if (f >= F || r >= Q) return;
    float ss = 0.0f;
    for (uint c = 0; c < n; c++) {
        float t = y[yo + (r * n + c) * F + f];
        ss += t * t;
    }
    float den = sqrt(ss) + 1e-5f;
    for (uint c = 0; c < n; c++) yhat[ho + (r * n + c) * F + f] = y[yo + (r * n + c) * F + f] / den;
}

// Backward of the normalisation and of logit[r,c] = alpha·⟨w, Ŷ[r,c,:]⟩, from dlogits [Q·n]:
// with G[c] = alpha·dlogit[r,c]·w[f] = dŶ[r,c,f], s = √Σ_c Y², den = s + 1e-5,
//   dY[r,c,f] = G[c]/den − (Σ_c′ G[c′]·Y[r,c′,f]) / den² · Y[r,c,f]/s,
// where the second term is 0 when s = 0 (torch.norm's backward masks a zero norm).
kernel void classnorm_backward(global const float *y, uint yo, global const float *dlogits,
                               uint lo, global const float *w, uint wo, global float *dy,
                               uint dyo, uint Q, uint n, uint F, float alpha) {
    uint f = get_global_id(0), r = get_global_id(1);
    if (f >= F || r >= Q) return;
    float ss = 0.0f, gy = 0.0f, wf = alpha * w[wo + f];
    for (uint c = 0; c < n; c++) {
        float t = y[yo + (r * n + c) * F + f];
        ss += t * t;
        gy += wf * dlogits[lo + r * n + c] * t;
    }
    float s = sqrt(ss), den = s + 1e-5f;
    float k = s > 0.0f ? gy / (den * den * s) : 0.0f;
    for (uint c = 0; c < n; c++) {
        uint i = (r * n + c) * F + f;
        dy[dyo + i] = wf * dlogits[lo + r * n + c] / den - k * y[yo + i];
    }
}

// WeightNorm (dim 0) of a one-row weight: w[f] = v[f]·(g / ‖v‖). Each work-item recomputes
// the norm (F = 64 terms) in the same order, so all agree.
kernel void weightnorm_forward(global const float *g, uint go, global const float *v, uint vo,
                               global float *w, uint wo, uint F) {
    uint f = get_global_id(0);
    if (f >= F) return;
    float ss = 0.0f;
    for (uint i = 0; i < F; i++) ss += v[vo + i] * v[vo + i];
    w[wo + f] = v[vo + f] * (g[go] / sqrt(ss));
}

// Its backward, accumulating as PyTorch: with t = ⟨dw, v⟩/‖v‖,
//   dg += t,  dv[f] += (g/‖v‖)·(dw[f] − v[f]·t/‖v‖).
kernel void weightnorm_backward(global const float *g, uint go, global const float *v, uint vo,
                                global const float *dw, uint dwo, global float *dg, uint dgo,
                                global float *dv, uint dvo, uint F) {
    uint f = get_global_id(0);
    if (f >= F) return;
    float ss = 0.0f, dot = 0.0f;
    for (uint i = 0; i < F; i++) {
        ss += v[vo + i] * v[vo + i];
        dot += dw[dwo + i] * v[vo + i];
    }
    float norm = sqrt(ss), t = dot / norm;
    dv[dvo + f] += (g[go] / norm) * (dw[dwo + f] - v[vo + f] * (t / norm));
    if (f == 0) dg[dgo] += t;
}
