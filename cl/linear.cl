// Helpers of the linear layer around the CLBlast GEMMs.

// y[i,j] = b[j]: the bias broadcast that the GEMM then accumulates onto (beta = 1).
kernel void broadcast_rows(global const float *b, uint bo, global float *y, uint yo, uint rows,
                           uint cols) {
    uint j = get_global_id(0), i = get_global_id(1);
    if (i < rows && j < cols) y[yo + i * cols + j] = b[bo + j];
}

// out[j] (+)= sum_i x[i,j]. One work-item per column walks the rows in order: adjacent
// work-items read adjacent addresses, and the sum order is fixed, so results are
// deterministic run to run.
kernel void sum_rows(global const float *x, uint xo, global float *out, uint oo, uint rows,
                     uint cols, int accumulate) {
    uint j = get_global_id(0);
    if (j >= cols) return;
    float s = 0.0f;
    for (uint i = 0; i < rows; i++) s += x[xo + i * cols + j];
    out[oo + j] = accumulate ? out[oo + j] + s : s;
}
