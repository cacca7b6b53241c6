// Elementwise kernels. Every tensor arrives as (buffer, element offset); one work-item per
// element, global size rounded up, so each kernel bounds-checks against n.

kernel void fill(global float *x, uint xo, uint n, float value) {
    uint i = get_global_id(0);
    if (i < n) x[xo + i] = value;
}

kernel void add(global const float *a, uint ao, global const float *b, uint bo,
                global float *out, uint oo, uint n) {
    uint i = get_global_id(0);
    if (i < n) out[oo + i] = a[ao + i] + b[bo + i];
}

kernel void scale(global const float *x, uint xo, global float *out, uint oo, uint n,
                  float alpha) {
    uint i = get_global_id(0);
    if (i < n) out[oo + i] = alpha * x[xo + i];
}

kernel void axpy(global const float *x, uint xo, global float *y, uint yo, uint n, float alpha) {
    uint i = get_global_id(0);
    if (i < n) y[yo + i] += alpha * x[xo + i];
}

kernel void relu_forward(global const float *x, uint xo, global float *y, uint yo, uint n) {
    uint i = get_global_id(0);
    if (i < n) y[yo + i] = fmax(x[xo + i], 0.0f);
}

// dx = dy where y > 0: the gradient at 0 is 0, as in PyTorch.
kernel void relu_backward(global const float *y, uint yo, global const float *dy, uint dyo,
                          global float *dx, uint dxo, uint n) {
    uint i = get_global_id(0);
    if (i < n) dx[dxo + i] = y[yo + i] > 0.0f ? dy[dyo + i] : 0.0f;
}
