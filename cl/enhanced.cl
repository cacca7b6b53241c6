// Kernels of the enhanced head (lib/nn/enhanced.c): splitting the class-major episode
// features into supports and queries (and merging their gradients back), a plain copy, and the
// uncertainty weighting of the three losses (docs/maths.md §4.9), which is a handful of
// scalars and runs as one work-item so that nothing is read back to the host.

// x [n, k+q, d] → s [n, k, d] (the first k rows of each class), z [n, q, d] (the rest).
kernel void split_episode(global const float *x, uint xo, global float *s, uint so,
                          global float *z, uint zo, uint n, uint k, uint q, uint d) {
    uint i = get_global_id(0);
    if (i >= n * (k + q) * d) return;
    uint col = i % d, row = i / d, c = row / (k + q), j = row % (k + q);
    if (j < k)
        s[so + (c * k + j) * d + col] = x[xo + i];
    else
        z[zo + (c * q + j - k) * d + col] = x[xo + i];
}

// The inverse: dx [n, k+q, d] from ds [n, k, d] and dz [n, q, d] (overwritten).
kernel void merge_episode(global const float *ds, uint so, global const float *dz, uint zo,
                          global float *dx, uint xo, uint n, uint k, uint q, uint d) {
    uint i = get_global_id(0);
    if (i >= n * (k + q) * d) return;
    uint col = i % d, row = i / d, c = row / (k + q), j = row % (k + q);
    dx[xo + i] = j < k ? ds[so + (c * k + j) * d + col] : dz[zo + (c * q + j - k) * d + col];
}

kernel void copy(global const float *x, uint xo, global float *y, uint yo, uint n) {
    uint i = get_global_id(0);
    if (i < n) y[yo + i] = x[xo + i];
}

// total = Σ_k L_k·exp(−s_k) + s_k over (I, V, C) = (CE, variance, covariance).
kernel void uncertainty_forward(global const float *lce, uint lceo, global const float *lv,
                                uint lvo, global const float *lc, uint lco,
                                global const float *s, uint so, global float *total, uint to) {
    if (get_global_id(0) != 0) return;
    float l[3] = {lce[lceo], lv[lvo], lc[lco]};
    float t = 0.0f;
    for (int j = 0; j < 3; j++) t += l[j] * exp(-s[so + j]) + s[so + j];
    total[to] = t;
}

// From d total = 1: dL_k = exp(−s_k) (overwritten), ds_k += 1 − L_k·exp(−s_k) (accumulated,
// as parameter gradients are).
kernel void uncertainty_backward(global const float *lce, uint lceo, global const float *lv,
                                 uint lvo, global const float *lc, uint lco,
                                 global const float *s, uint so, global float *dce, uint dceo,
                                 global float *dlv, uint dlvo, global float *dlc, uint dlco,
                                 global float *ds, uint dso) {
    if (get_global_id(0) != 0) return;
    float l[3] = {lce[lceo], lv[lvo], lc[lco]};
    float w[3];
    for (int j = 0; j < 3; j++) {
        w[j] = exp(-s[so + j]);
        ds[dso + j] += 1.0f - l[j] * w[j];
    }
    dce[dceo] = w[0];
    dlv[dlvo] = w[1];
    dlc[dlco] = w[2];
}
