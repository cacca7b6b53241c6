// BatchNorm2d over NCHW tensors (PyTorch semantics). One work-group per channel walks that
// channel's N·H·W values in a fixed order (item l takes positions l, l+wg, ... of each
// image) and combines the per-item partial sums with a tree in local memory, so every
// result is deterministic. The work-group size is a power of two (fcl_wg_1d).

// group_sum: cl/common.cl.

// Training forward for channel c = group id. With M = N·HW values x_m of the channel:
//   mean = Σx/M, var = Σ(x−mean)²/M (biased, two passes for accuracy), inv = 1/√(var+eps),
//   y = (x−mean)·inv·gamma + beta;
//   running_mean = (1−mom)·running_mean + mom·mean,
//   running_var  = (1−mom)·running_var  + mom·var·M/(M−1) (unbiased, as PyTorch).
// save_mean/save_inv keep mean and inv for the backward pass.
kernel void bn_forward_train(global const float *x, uint xo, global const float *gamma, uint go,
                             global const float *beta, uint bo, global float *rmean, uint rmo,
                             global float *rvar, uint rvo, global float *y, uint yo,
                             global float *smean, uint smo, global float *sinv, uint sio,
                             uint n, uint c_count, uint hw, float momentum, float eps,
                             local float *scratch) {
    uint c = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (c >= c_count) return; // whole groups only: the barriers below stay uniform
    float m = (float)n * (float)hw;
    float s = 0.0f;
    for (uint i = 0; i < n; i++) {
        uint base = xo + (i * c_count + c) * hw;
        for (uint p = l; p < hw; p += wg) s += x[base + p];
    }
    float mean = group_sum(s, scratch) / m;
    s = 0.0f;
    for (uint i = 0; i < n; i++) {
        uint base = xo + (i * c_count + c) * hw;
        for (uint p = l; p < hw; p += wg) {
            float d = x[base + p] - mean;
            s += d * d;
        }
    }
    float var = group_sum(s, scratch) / m;
    float inv = 1.0f / sqrt(var + eps);
    float a = inv * gamma[go + c], shift = beta[bo + c];
    for (uint i = 0; i < n; i++) {
        uint bx = xo + (i * c_count + c) * hw, by = yo + (i * c_count + c) * hw;
        for (uint p = l; p < hw; p += wg) y[by + p] = (x[bx + p] - mean) * a + shift;
    }
    if (l == 0) {
        float unbiased = var * m / (m - 1.0f); // M ≥ 2: the host rejects M = 1
        rmean[rmo + c] = (1.0f - momentum) * rmean[rmo + c] + momentum * mean;
        rvar[rvo + c] = (1.0f - momentum) * rvar[rvo + c] + momentum * unbiased;
        smean[smo + c] = mean;
        sinv[sio + c] = inv;
    }
}

// Evaluation forward, elementwise: y = (x − running_mean)·gamma/√(running_var+eps) + beta.
kernel void bn_forward_eval(global const float *x, uint xo, global const float *gamma, uint go,
                            global const float *beta, uint bo, global const float *rmean, uint rmo,
                            global const float *rvar, uint rvo, global float *y, uint yo,
                            uint numel, uint c_count, uint hw, float eps) {
    uint i = get_global_id(0);
    if (i >= numel) return;
    uint c = (i / hw) % c_count;
    float inv = 1.0f / sqrt(rvar[rvo + c] + eps);
    y[yo + i] = (x[xo + i] - rmean[rmo + c]) * inv * gamma[go + c] + beta[bo + c];
}

// Backward for channel c = group id, with x̂ = (x − mean)·inv:
//   dbeta += Σdy, dgamma += Σdy·x̂.
// train = 1 (mean, inv are the batch statistics, which depend on x):
//   dx = gamma·inv/M · (M·dy − Σdy − x̂·Σdy·x̂)
// train = 0 (mean = running_mean, stat = running_var, constants): dx = dy·gamma·inv.
// dx may alias dy: each item reads dy[k] before it writes dx[k], after the reductions.
kernel void bn_backward(global const float *x, uint xo, global const float *gamma, uint go,
                        global const float *mean_t, uint mo, global const float *stat_t, uint so,
                        global const float *dy, uint dyo, global float *dx, uint dxo,
                        global float *dgamma, uint dgo, global float *dbeta, uint dbo, uint n,
                        uint c_count, uint hw, int train, float eps, local float *scratch) {
    uint c = get_group_id(0), l = get_local_id(0), wg = get_local_size(0);
    if (c >= c_count) return;
    float mean = mean_t[mo + c];
    float inv = train ? stat_t[so + c] : 1.0f / sqrt(stat_t[so + c] + eps);
    float sdy = 0.0f, sdyx = 0.0f;
    for (uint i = 0; i < n; i++) {
        uint bx = xo + (i * c_count + c) * hw, bd = dyo + (i * c_count + c) * hw;
        for (uint p = l; p < hw; p += wg) {
            float g = dy[bd + p];
            sdy += g;
            sdyx += g * (x[bx + p] - mean) * inv;
        }
    }
    sdy = group_sum(sdy, scratch);
    sdyx = group_sum(sdyx, scratch);
    float m = (float)n * (float)hw, k = gamma[go + c] * inv;
    for (uint i = 0; i < n; i++) {
        uint bx = xo + (i * c_count + c) * hw, bd = dyo + (i * c_count + c) * hw,
             bo = dxo + (i * c_count + c) * hw;
        for (uint p = l; p < hw; p += wg) {
            float g = dy[bd + p];
            if (train) {
                float xh = (x[bx + p] - mean) * inv;
                dx[bo + p] = k * (g - sdy / m - xh * sdyx / m);
            } else {
                dx[bo + p] = k * g;
            }
        }
    }
    if (l == 0) {
        dgamma[dgo + c] += sdyx;
        dbeta[dbo + c] += sdy;
    }
}
