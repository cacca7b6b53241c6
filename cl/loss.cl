// Cross-entropy from logits with class-index labels, and argmax accuracy.
// Labels arrive as floats holding class indices (exact below 2^24). A label that is not an
// integer in [0, classes) makes the loss NaN (and never counts as correct), so a bad label
// cannot pass silently. The scalar results come from one work-group: item l takes rows
// l, l+wg, ... (each row walked serially over its classes, which are few in few-shot
// episodes) and the per-item partial sums meet in a tree in local memory: fixed order,
// deterministic. Work-group size: a power of two (fcl_wg_1d).

// group_sum: cl/common.cl.

// The label of a row as an index, or -1 when it is not a valid class.
int label_index(float v, uint classes) {
    if (!(v >= 0.0f && v < (float)classes) || v != floor(v)) return -1;
    return (int)v;
}

// loss = (1/rows)·Σ_r [log Σ_k exp(z_rk − m_r) + (m_r − z_r,y_r)], m_r = max_k z_rk: the
// log-sum-exp minus the label's logit, written so that no exp overflows and the large
// terms m_r and z_r,y cancel exactly first.
kernel void ce_forward(global const float *z, uint zo, global const float *labels, uint lo,
                       global float *loss, uint oo, uint rows, uint classes,
                       local float *scratch) {
    uint l = get_local_id(0), wg = get_local_size(0);
    float part = 0.0f;
    for (uint r = l; r < rows; r += wg) {
        uint b = zo + r * classes;
        int y = label_index(labels[lo + r], classes);
        float m = -INFINITY;
        for (uint k = 0; k < classes; k++) m = fmax(m, z[b + k]);
        float s = 0.0f;
        for (uint k = 0; k < classes; k++) s += exp(z[b + k] - m);
        part += y < 0 ? NAN : log(s) + (m - z[b + (uint)y]);
    }
    float total = group_sum(part, scratch);
    if (l == 0) loss[oo] = total / (float)rows;
}

// dz_rk = g/rows · (softmax(z_r)_k − [k = y_r]), g the upstream gradient of the loss.
// One item per row; dz overwritten (NaN for rows with an invalid label).
kernel void ce_backward(global const float *z, uint zo, global const float *labels, uint lo,
                        global const float *dloss, uint go, global float *dz, uint dzo,
                        uint rows, uint classes) {
    uint r = get_global_id(0);
    if (r >= rows) return;
    uint b = zo + r * classes, bd = dzo + r * classes;
    int y = label_index(labels[lo + r], classes);
    float m = -INFINITY;
    for (uint k = 0; k < classes; k++) m = fmax(m, z[b + k]);
    float s = 0.0f;
    for (uint k = 0; k < classes; k++) s += exp(z[b + k] - m);
    float g = dloss[go] / (float)rows, inv = 1.0f / s;
    for (uint k = 0; k < classes; k++) {
        float p = exp(z[b + k] - m) * inv;
        dz[bd + k] = y < 0 ? NAN : g * (p - ((int)k == y ? 1.0f : 0.0f));
    }
}

// correct = #rows whose argmax equals the label; the first maximum wins ties (as
// torch.argmax). Counts are exact in float up to 2^24 rows.
kernel void accuracy(global const float *z, uint zo, global const float *labels, uint lo,
                     global float *correct, uint co, uint rows, uint classes,
                     local float *scratch) {
    uint l = get_local_id(0), wg = get_local_size(0);
    float part = 0.0f;
    for (uint r = l; r < rows; r += wg) {
        uint b = zo + r * classes, best = 0;
        for (uint k = 1; k < classes; k++)
            if (z[b + k] > z[b + best]) best = k;
        part += label_index(labels[lo + r], classes) == (int)best ? 1.0f : 0.0f;
    }
    float total = group_sum(part, scratch);
    if (l == 0) correct[co] = total;
}

// labels[r] = floor(r / per_class): the episode order of the query rows (class-major).
kernel void episode_labels(global float *labels, uint lo, uint rows, uint per_class) {
    uint r = get_global_id(0);
    if (r < rows) labels[lo + r] = (float)(r / per_class);
}
