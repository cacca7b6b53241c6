// The Mahalanobis classifier (docs/maths.md §4.4–§4.7): class covariances, a batched blocked
// Cholesky, the inverse from the factor, distances and the backward helpers. Every matrix is
// row-major; batch b of a [B,D,D] tensor starts at ao + b·D·D. BS (the Cholesky block size)
// comes from the build options and is at most the work-group size the host chose.

#ifndef BS
#define BS 32
#endif

// x[c,i,j] = e[c,i,j] − mean_i e[c,i,j]: the supports of each class centred on their plain
// mean. One work-item per (class, column) walks the k rows in order.
kernel void center_rows(global const float *e, uint eo, global float *x, uint xo, uint classes,
                        uint rows, uint cols) {
    uint j = get_global_id(0), c = get_global_id(1);
    if (j >= cols || c >= classes) return;
    uint base = c * rows * cols + j;
    float s = 0.0f;
    for (uint i = 0; i < rows; i++) s += e[eo + base + i * cols];
    float m = s / (float)rows;
    for (uint i = 0; i < rows; i++) x[xo + base + i * cols] = e[eo + base + i * cols] - m;
}

// dst[b] = src[b] + jitter·I for `count` D×D matrices: the copy the in-place Cholesky works on,
// with the retry's diagonal jitter. src may equal dst (then only the diagonal moves).
kernel void copy_add_diag(global const float *src, uint so, global float *dst, uint dso, uint d,
                          uint count, float jitter) {
    uint idx = get_global_id(0);
    uint per = d * d;
    if (idx >= per * count) return;
    uint r = (idx % per) / d, col = idx % d;
    dst[dso + idx] = src[so + idx] + (r == col ? jitter : 0.0f);
}

// The same for CPU devices, one work-item per matrix row (`count`·D of them): PoCL runs the
// row's loop as plain compiled code, where a work-item per element costs ~10 ns of bookkeeping
// (16 ms for five 512x512 matrices, measured). Same additions, so the same bits.
kernel void copy_add_diag_rows(global const float *src, uint so, global float *dst, uint dso,
                               uint d, uint count, float jitter) {
    uint row = get_global_id(0);
    if (row >= d * count) return;
    uint r = row % d, base = row * d;
    for (uint col = 0; col < d; col++)
        dst[dso + base + col] = src[so + base + col] + (r == col ? jitter : 0.0f);
}

// Diagonal block [j0, j0+nb) of each matrix factorised in local memory, one work-group of BS
// items per matrix, item t owning row t of the block (right-looking: scale column t below the
// pivot, then update the rows below). The first non-positive (or NaN) pivot is recorded as its
// 1-based index in status[b] unless an earlier one was; the host reads status back.
kernel void potrf_diag(global float *a, uint ao, global float *status, uint so, uint d, uint j0,
                       uint nb) {
    local float blk[BS * BS];
    uint b = get_group_id(0), lid = get_local_id(0);
    global float *m = a + ao + (size_t)b * d * d;
    if (lid < nb)
        for (uint c = 0; c <= lid; c++) blk[lid * BS + c] = m[(j0 + lid) * d + j0 + c];
    uint fail = 0;
    for (uint t = 0; t < nb; t++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            float p = blk[t * BS + t];
            if (!(p > 0.0f) && fail == 0) fail = j0 + t + 1;
            blk[t * BS + t] = sqrt(p);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid > t && lid < nb) blk[lid * BS + t] /= blk[t * BS + t];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid > t && lid < nb) {
            float l = blk[lid * BS + t];
            for (uint c = t + 1; c <= lid; c++) blk[lid * BS + c] -= l * blk[c * BS + t];
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < nb)
        for (uint c = 0; c <= lid; c++) m[(j0 + lid) * d + j0 + c] = blk[lid * BS + c];
    if (lid == 0 && fail != 0 && status[so + b] == 0.0f) status[so + b] = (float)fail;
}

// The panel below the diagonal block: L21 = A21·L11⁻ᵀ, i.e. for each row by forward
// substitution x_t = (a_t − Σ_{s<t} x_s·L11[t,s]) / L11[t,t]. L11 is shared in local memory;
// one work-item per row, dimension 1 the matrix.
kernel void trsm_panel(global float *a, uint ao, uint d, uint j0, uint nb) {
    local float l11[BS * BS];
    uint b = get_global_id(1), lid = get_local_id(0), lsz = get_local_size(0);
    global float *m = a + ao + (size_t)b * d * d;
    for (uint idx = lid; idx < nb * nb; idx += lsz)
        l11[(idx / nb) * BS + idx % nb] = m[(j0 + idx / nb) * d + j0 + idx % nb];
    barrier(CLK_LOCAL_MEM_FENCE);
    uint i = j0 + nb + get_global_id(0);
    if (i >= d) return;
    float x[BS];
    for (uint t = 0; t < nb; t++) {
        float s = m[i * d + j0 + t];
        for (uint u = 0; u < t; u++) s -= x[u] * l11[t * BS + u];
        x[t] = s / l11[t * BS + t];
        m[i * d + j0 + t] = x[t];
    }
}

// inv = L⁻¹ (lower triangular; the upper triangle written as 0) from the factor in the lower
// triangle of l, by forward substitution on each e_j: X[i,j] = (δ_ij − Σ_{j<=s<i} L[i,s]·X[s,j])
// / L[i,i]. Two variants: tri_inverse_wg (GPUs, where a column fits in local memory) and
// tri_inverse_rows (CPU devices, and any device otherwise).

// A work-group per (column j, matrix), its column of X in local memory,
// right-looking — at step u every item reads the finished x[u] and updates its rows i > u,
// x[i] −= L[i,u]·x[u]/L[u,u] — so the serial chain is d − j barriers and each step's work is
// spread over the group (one item per column left 99% of an H200 idle: 7.6 ms at d = 512).
// x holds the unscaled values; X[i,j] = x[i]/L[i,i] at the end.
kernel void tri_inverse_wg(global const float *l, uint lo, global float *inv, uint io, uint d,
                           uint count, local float *x) {
    uint j = get_group_id(0), b = get_group_id(1), lid = get_local_id(0);
    uint wg = get_local_size(0);
    if (j >= d || b >= count) return; // whole groups: the barriers stay uniform
    global const float *L = l + lo + (size_t)b * d * d;
    global float *X = inv + io + (size_t)b * d * d;
    for (uint i = lid; i < d; i += wg)
        x[i] = i == j ? 1.0f : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint u = j; u + 1 < d; u++) {
        float xu = x[u] / L[(size_t)u * d + u];
        for (uint i = u + 1 + lid; i < d; i += wg)
            x[i] -= L[(size_t)i * d + u] * xu;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (uint i = lid; i < d; i += wg)
        X[(size_t)i * d + j] = i < j ? 0.0f : x[i] / L[(size_t)i * d + i];
}

// A work-item per (column j, matrix) that keeps its column of X as row j of
// the output's upper triangle while it substitutes, so both operands of each dot product are
// contiguous (eight accumulators, vload8), then moves it into column j and zeroes row j
// right of the diagonal. Items touch disjoint elements: row j from the diagonal on is item
// j's alone, and column j below the diagonal lies left of the diagonal of every row.
// Item 0 loops ~d²/16 times in all, so the host launches it on slices of rows [i0, i1)
// (FCL_ITEM_LOOP_BUDGET); the slice that ends at d also moves the column into place.
kernel void tri_inverse_rows(global const float *l, uint lo, global float *inv, uint io, uint d,
                             uint count, uint i0, uint i1) {
    uint j = get_global_id(0), b = get_global_id(1);
    if (j >= d || b >= count) return;
    global const float *L = l + lo + (size_t)b * d * d;
    global float *X = inv + io + (size_t)b * d * d;
    global float *xj = X + (size_t)j * d; // xj[i] = X[i, j] for i >= j while substituting
    for (uint i = max(i0, j); i < i1; i++) {
        global const float *li = L + (size_t)i * d;
        float s = (i == j) ? 1.0f : 0.0f;
        float8 s8 = 0.0f;
        uint u = j;
        for (; u + 8 <= i; u += 8)
            s8 += vload8(0, li + u) * vload8(0, xj + u);
        for (; u < i; u++)
            s -= li[u] * xj[u];
        s -= ((s8.s0 + s8.s1) + (s8.s2 + s8.s3)) + ((s8.s4 + s8.s5) + (s8.s6 + s8.s7));
        xj[i] = s / li[i];
    }
    if (i1 < d) return;
    for (uint i = j + 1; i < d; i++) {
        X[(size_t)i * d + j] = xj[i];
        xj[i] = 0.0f;
    }
}

// diff[c,r,j] = h[r,j] − p[c,j].
kernel void class_diff(global const float *h, uint ho, global const float *p, uint po,
                       global float *diff, uint dfo, uint queries, uint classes, uint d) {
    uint j = get_global_id(0), r = get_global_id(1), c = get_global_id(2);
    if (j >= d || r >= queries || c >= classes) return;
    diff[dfo + ((size_t)c * queries + r) * d + j] = h[ho + r * d + j] - p[po + c * d + j];
}

// logits[r,c] = −Σ_j (h[r,j] − p[c,j])·y[c,r,j] with y = Σ_c⁻¹(h_r − p_c): one work-group per
// (r,c), a strided partial sum per item, then a tree in local memory (fixed order).
kernel void neg_quadratic(global const float *h, uint ho, global const float *p, uint po,
                          global const float *y, uint yo, global float *logits, uint lgo,
                          uint queries, uint classes, uint d, local float *part) {
    uint lid = get_local_id(0), lsz = get_local_size(0), rc = get_group_id(1);
    uint r = rc / classes, c = rc % classes;
    float s = 0.0f;
    if (r < queries)
        for (uint j = lid; j < d; j += lsz)
            s += (h[ho + r * d + j] - p[po + c * d + j]) * y[yo + ((size_t)c * queries + r) * d + j];
    part[lid] = s;
    for (uint w = lsz / 2; w > 0; w /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < w) part[lid] += part[lid + w];
    }
    if (lid == 0 && r < queries) logits[lgo + r * classes + c] = -part[0];
}

// g[c,r,j] = −2·dlogits[r,c]·y[c,r,j]: d dist/d(h−p) = 2Σ⁻¹(h−p) = 2y and dist = −logit.
kernel void scale_by_dlogits(global const float *y, uint yo, global const float *dl, uint dlo,
                             global float *g, uint go, uint queries, uint classes, uint d) {
    uint j = get_global_id(0), r = get_global_id(1), c = get_global_id(2);
    if (j >= d || r >= queries || c >= classes) return;
    size_t idx = ((size_t)c * queries + r) * d + j;
    g[go + idx] = -2.0f * dl[dlo + r * classes + c] * y[yo + idx];
}

// dh[r,j] = Σ_c g[c,r,j] (classes in order).
kernel void sum_over_classes(global const float *g, uint go, global float *dh, uint dho,
                             uint queries, uint classes, uint d) {
    uint j = get_global_id(0), r = get_global_id(1);
    if (j >= d || r >= queries) return;
    float s = 0.0f;
    for (uint c = 0; c < classes; c++) s += g[go + ((size_t)c * queries + r) * d + j];
    dh[dho + r * d + j] = s;
}

// dp[c,j] = −Σ_r g[c,r,j] (queries in order).
kernel void neg_sum_over_queries(global const float *g, uint go, global float *dp, uint dpo,
                                 uint queries, uint classes, uint d) {
    uint j = get_global_id(0), c = get_global_id(1);
    if (j >= d || c >= classes) return;
    float s = 0.0f;
    for (uint r = 0; r < queries; r++) s += g[go + ((size_t)c * queries + r) * d + j];
    dp[dpo + c * d + j] = -s;
}
