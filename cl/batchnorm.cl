// BatchNorm2d over NCHW tensors (PyTorch semantics), in three steps so that every step is
// fast on CPUs (PoCL) and GPUs alike and every result deterministic:
//   1. tile statistics: channel c's M = N·HW values, in (image, position) order, are cut into
//      tiles of `tile` values; work-group (t, c) reduces tile t (a tree in local memory, so
//      the order is fixed) while the tile is small enough to stay in cache;
//   2. one work-item per channel combines its tiles in order;
//   3. an elementwise pass over (position, channel, image): no index division.
// The work-group size is a power of two (fcl_wg_1d).

// group_sum: cl/common.cl.

// Walks tile t of channel c: item l visits j = begin + l, begin + l + wg, ... < end, with
// (i, p) = (j / hw, j % hw) stepped without dividing per element.
#define TILE_WALK(BODY)                                                                            \
    {                                                                                              \
        uint j = begin + l, i = j / hw, p = j - i * hw, di = wg / hw, dp = wg - di * hw;          \
        for (; j < end; j += wg) {                                                                 \
            uint at = (i * c_count + c) * hw + p;                                                  \
            BODY;                                                                                  \
            i += di, p += dp;                                                                      \
            if (p >= hw) p -= hw, i++;                                                             \
        }                                                                                          \
    }

// Training forward, step 1: the tile's mean and M2 = Σ(x − mean_t)² (two passes over the
// tile, for accuracy), into part[(c·tiles + t)·2 + {0, 1}].
kernel void bn_tile_stats(global const float *x, uint xo, global float *part, uint po, uint n,
                          uint c_count, uint hw, uint tile, uint tiles, local float *scratch) {
    uint t = get_group_id(0), c = get_group_id(1), l = get_local_id(0), wg = get_local_size(0);
    if (t >= tiles || c >= c_count) return; // whole groups only: the barriers stay uniform
    uint begin = t * tile, end = min(begin + tile, n * hw);
    float s = 0.0f;
    TILE_WALK(s += x[xo + at]);
    float mean = group_sum(s, scratch) / (float)(end - begin);
    s = 0.0f;
    TILE_WALK(float d = x[xo + at] - mean; s += d * d);
    float m2 = group_sum(s, scratch);
    if (l == 0) {
        part[po + (c * tiles + t) * 2] = mean;
        part[po + (c * tiles + t) * 2 + 1] = m2;
    }
}

// Step 2, channel c: the tiles combined in order (Chan et al.: mean = Σ n_t·mean_t / M,
// M2 = Σ M2_t + n_t·(mean_t − mean)²), var = M2/M (biased), inv = 1/√(var+eps), and the
// unbiased variance var·M/(M−1) (PyTorch's running_var uses it).
static void bn_batch_stats(global const float *pc, uint m, uint tile, uint tiles, float eps,
                           float *mean_out, float *unbiased_out, float *inv_out) {
    float sum = 0.0f;
    for (uint t = 0; t < tiles; t++)
        sum += (float)(min(tile, m - t * tile)) * pc[2 * t];
    float mean = sum / (float)m, m2 = 0.0f;
    for (uint t = 0; t < tiles; t++) {
        float d = pc[2 * t] - mean;
        m2 += pc[2 * t + 1] + (float)(min(tile, m - t * tile)) * d * d;
    }
    float var = m2 / (float)m;
    *mean_out = mean;
    *inv_out = 1.0f / sqrt(var + eps);
    *unbiased_out = var * (float)m / (float)(m - 1); // M ≥ 2: the host rejects M = 1
}

// One running-statistics update, r = (1−mom)·r + mom·x: shared by the training forward and
// the meta-batch replay (bn_running_replay), so that both round alike (docs/maths.md §7.1).
static void bn_running_update(global float *r, uint i, float x, float momentum) {
    r[i] = (1.0f - momentum) * r[i] + momentum * x;
}

//   running_mean = (1−mom)·running_mean + mom·mean,
//   running_var  = (1−mom)·running_var  + mom·unbiased;
// save_mean/save_inv keep mean and inv for step 3 and the backward pass.
kernel void bn_combine_stats(global const float *part, uint po, global float *rmean, uint rmo,
                             global float *rvar, uint rvo, global float *smean, uint smo,
                             global float *sinv, uint sio, uint c_count, uint m, uint tile,
                             uint tiles, float momentum, float eps) {
    uint c = get_global_id(0);
    if (c >= c_count) return;
    float mean, unbiased, inv;
    bn_batch_stats(part + po + c * tiles * 2, m, tile, tiles, eps, &mean, &unbiased, &inv);
    bn_running_update(rmean, rmo + c, mean, momentum);
    bn_running_update(rvar, rvo + c, unbiased, momentum);
    smean[smo + c] = mean;
    sinv[sio + c] = inv;
}

// The same for one episode of a meta-batch: the running statistics are not touched; the batch
// mean and unbiased variance are recorded instead (rec_mean, rec_var) for the replay.
kernel void bn_combine_stats_record(global const float *part, uint po, global float *rec_mean,
                                    uint rmo, global float *rec_var, uint rvo,
                                    global float *smean, uint smo, global float *sinv, uint sio,
                                    uint c_count, uint m, uint tile, uint tiles, float eps) {
    uint c = get_global_id(0);
    if (c >= c_count) return;
    float mean, unbiased, inv;
    bn_batch_stats(part + po + c * tiles * 2, m, tile, tiles, eps, &mean, &unbiased, &inv);
    rec_mean[rmo + c] = mean;
    rec_var[rvo + c] = unbiased;
    smean[smo + c] = mean;
    sinv[sio + c] = inv;
}

// The replay of a meta-batch's records in episode order, channel c: for e = 0 … episodes−1,
// r = (1−mom)·r + mom·rec[e·stride + c]: the updates the episodes' forwards would have made.
kernel void bn_running_replay(global float *r, uint ro, global const float *rec, uint reco,
                              uint stride, uint episodes, uint c_count, float momentum) {
    uint c = get_global_id(0);
    if (c >= c_count) return;
    for (uint e = 0; e < episodes; e++)
        bn_running_update(r, ro + c, rec[reco + e * stride + c], momentum);
}

// Step 3 over (p, c, i): y = (x − mean)·inv·gamma + beta, then (add) + res and (relu)
// max(·, 0), as bn_forward_eval below.
kernel void bn_normalize(global const float *x, uint xo, global const float *gamma, uint go,
                         global const float *beta, uint bo, global const float *smean, uint smo,
                         global const float *sinv, uint sio, global const float *res, uint ro,
                         global float *y, uint yo, uint n, uint c_count, uint hw, int add,
                         int relu) {
    uint p = get_global_id(0), c = get_global_id(1), i = get_global_id(2);
    if (p >= hw || c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw + p;
    float v = (x[xo + at] - smean[smo + c]) * (sinv[sio + c] * gamma[go + c]) + beta[bo + c];
    if (add) v = v + res[ro + at];
    y[yo + at] = relu ? fmax(v, 0.0f) : v;
}

// Evaluation forward over (p, c, i): y = (x − running_mean)·gamma/√(running_var+eps) + beta,
// then (add) + res and (relu) max(·, 0): the residual sum and the ReLU of a block in the same
// pass, with the same operations in the same order as the separate add and relu_forward
// kernels, so the bits are theirs. res may alias y (same element read, then written).
kernel void bn_forward_eval(global const float *x, uint xo, global const float *gamma, uint go,
                            global const float *beta, uint bo, global const float *rmean, uint rmo,
                            global const float *rvar, uint rvo, global const float *res, uint ro,
                            global float *y, uint yo, uint n, uint c_count, uint hw, float eps,
                            int add, int relu) {
    uint p = get_global_id(0), c = get_global_id(1), i = get_global_id(2);
    if (p >= hw || c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw + p;
    float inv = 1.0f / sqrt(rvar[rvo + c] + eps);
    float v = (x[xo + at] - rmean[rmo + c]) * inv * gamma[go + c] + beta[bo + c];
    if (add) v = v + res[ro + at];
    y[yo + at] = relu ? fmax(v, 0.0f) : v;
}

// Backward, with x̂ = (x − mean)·inv (train = 1: mean, inv the batch statistics saved by the
// forward, which depend on x; train = 0: running_mean and 1/√(running_var + eps), constants).
// Step 1, tile t of channel c: Σdy and Σdy·x̂ into part[(c·tiles + t)·2 + {0, 1}].
kernel void bn_tile_grad(global const float *x, uint xo, global const float *mean_t, uint mo,
                         global const float *stat_t, uint so, global const float *dy, uint dyo,
                         global float *part, uint po, uint n, uint c_count, uint hw, uint tile,
                         uint tiles, int train, float eps, local float *scratch) {
    uint t = get_group_id(0), c = get_group_id(1), l = get_local_id(0), wg = get_local_size(0);
    if (t >= tiles || c >= c_count) return;
    uint begin = t * tile, end = min(begin + tile, n * hw);
    float mean = mean_t[mo + c];
    float inv = train ? stat_t[so + c] : 1.0f / sqrt(stat_t[so + c] + eps);
    float sdy = 0.0f, sdyx = 0.0f;
    TILE_WALK(float g = dy[dyo + at]; sdy += g; sdyx += g * (x[xo + at] - mean) * inv);
    sdy = group_sum(sdy, scratch);
    sdyx = group_sum(sdyx, scratch);
    if (l == 0) {
        part[po + (c * tiles + t) * 2] = sdy;
        part[po + (c * tiles + t) * 2 + 1] = sdyx;
    }
}

// Step 2, channel c: Σdy and Σdy·x̂ over the tiles in order; dbeta += Σdy, dgamma += Σdy·x̂;
// the sums are kept in sums[c·2 + {0, 1}] for step 3.
kernel void bn_combine_grad(global const float *part, uint po, global float *sums, uint so,
                            global float *dgamma, uint dgo, global float *dbeta, uint dbo,
                            uint c_count, uint tiles) {
    uint c = get_global_id(0);
    if (c >= c_count) return;
    float sdy = 0.0f, sdyx = 0.0f;
    for (uint t = 0; t < tiles; t++) {
        sdy += part[po + (c * tiles + t) * 2];
        sdyx += part[po + (c * tiles + t) * 2 + 1];
    }
    sums[so + 2 * c] = sdy;
    sums[so + 2 * c + 1] = sdyx;
    dgamma[dgo + c] += sdyx;
    dbeta[dbo + c] += sdy;
}

// Step 3 over (p, c, i), k = gamma·inv:
//   train: dx = k·(dy − Σdy/M − x̂·Σdy·x̂/M);   eval: dx = k·dy.
// dx may alias dy: each item reads dy at its position before writing dx there.
kernel void bn_backward_dx(global const float *x, uint xo, global const float *gamma, uint go,
                           global const float *mean_t, uint mo, global const float *stat_t,
                           uint so, global const float *dy, uint dyo, global const float *sums,
                           uint sso, global float *dx, uint dxo, uint n, uint c_count, uint hw,
                           int train, float eps) {
    uint p = get_global_id(0), c = get_global_id(1), i = get_global_id(2);
    if (p >= hw || c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw + p;
    float inv = train ? stat_t[so + c] : 1.0f / sqrt(stat_t[so + c] + eps);
    float k = gamma[go + c] * inv, g = dy[dyo + at];
    if (train) {
        float m = (float)n * (float)hw, xh = (x[xo + at] - mean_t[mo + c]) * inv;
        dx[dxo + at] = k * (g - sums[sso + 2 * c] / m - xh * sums[sso + 2 * c + 1] / m);
    } else {
        dx[dxo + at] = k * g;
    }
}

// ---- Row variants for CPU devices (FCL_KERNEL_ROWS_HANDLE): the same arguments and results, one
// work-item per tile (step 1) or per (channel, image) row (step 3), looping over contiguous
// values — PoCL pays ~10 ns per work-item, and a loop vectorises.

// Walks tile t of channel c in order as runs of contiguous positions: `v` points at a run of
// `run` values (positions p .. p+run-1 of image i).
#define TILE_RUNS(BODY)                                                                            \
    {                                                                                              \
        uint i = begin / hw, p = begin - i * hw;                                                   \
        for (uint j = begin; j < end; i++, p = 0) {                                                \
            uint run = min(hw - p, end - j), at = (i * c_count + c) * hw + p;                      \
            BODY;                                                                                  \
            j += run;                                                                              \
        }                                                                                          \
    }

// A run's sum with eight accumulators (a float add's latency otherwise serialises the loop),
// added up in a fixed order: deterministic, and as accurate as a sum in eight parts.
#define RUN_SUM8(acc, run, TERM8, TERM1)                                                           \
    {                                                                                              \
        uint k = 0;                                                                                \
        for (; k + 8 <= run; k += 8)                                                               \
            acc##8 += TERM8;                                                                       \
        for (; k < run; k++)                                                                       \
            acc += TERM1;                                                                          \
    }

static float sum8(float8 v) {
    return ((v.s0 + v.s1) + (v.s2 + v.s3)) + ((v.s4 + v.s5) + (v.s6 + v.s7));
}

kernel void bn_tile_stats_rows(global const float *x, uint xo, global float *part, uint po,
                               uint n, uint c_count, uint hw, uint tile, uint tiles,
                               local float *unused) {
    uint t = get_global_id(0), c = get_global_id(1);
    if (t >= tiles || c >= c_count) return;
    uint begin = t * tile, end = min(begin + tile, n * hw);
    float s = 0.0f, m2 = 0.0f;
    float8 s8 = 0.0f, m28 = 0.0f;
    TILE_RUNS(RUN_SUM8(s, run, vload8(0, x + xo + at + k), x[xo + at + k]));
    float mean = (s + sum8(s8)) / (float)(end - begin);
    TILE_RUNS(RUN_SUM8(m2, run, (vload8(0, x + xo + at + k) - mean) * (vload8(0, x + xo + at + k) - mean),
                       (x[xo + at + k] - mean) * (x[xo + at + k] - mean)));
    part[po + (c * tiles + t) * 2] = mean;
    part[po + (c * tiles + t) * 2 + 1] = m2 + sum8(m28);
}

kernel void bn_tile_grad_rows(global const float *x, uint xo, global const float *mean_t, uint mo,
                              global const float *stat_t, uint so, global const float *dy,
                              uint dyo, global float *part, uint po, uint n, uint c_count,
                              uint hw, uint tile, uint tiles, int train, float eps,
                              local float *unused) {
    uint t = get_global_id(0), c = get_global_id(1);
    if (t >= tiles || c >= c_count) return;
    uint begin = t * tile, end = min(begin + tile, n * hw);
    float mean = mean_t[mo + c];
    float inv = train ? stat_t[so + c] : 1.0f / sqrt(stat_t[so + c] + eps);
    float sdy = 0.0f, sdyx = 0.0f;
    float8 sdy8 = 0.0f, sdyx8 = 0.0f;
    TILE_RUNS(RUN_SUM8(sdy, run, vload8(0, dy + dyo + at + k), dy[dyo + at + k]));
    TILE_RUNS(RUN_SUM8(sdyx, run, vload8(0, dy + dyo + at + k) * (vload8(0, x + xo + at + k) - mean),
                       dy[dyo + at + k] * (x[xo + at + k] - mean)));
    part[po + (c * tiles + t) * 2] = sdy + sum8(sdy8);
    part[po + (c * tiles + t) * 2 + 1] = (sdyx + sum8(sdyx8)) * inv;
}

// The row loops below go eight values at a time with vload8/vstore8 (the output may alias an
// input: each block is read before it is written), then one value at a time.
kernel void bn_normalize_rows(global const float *x, uint xo, global const float *gamma, uint go,
                              global const float *beta, uint bo, global const float *smean,
                              uint smo, global const float *sinv, uint sio,
                              global const float *res, uint ro, global float *y, uint yo, uint n,
                              uint c_count, uint hw, int add, int relu) {
    uint c = get_global_id(0), i = get_global_id(1);
    if (c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw, p = 0;
    float mean = smean[smo + c], k = sinv[sio + c] * gamma[go + c], b = beta[bo + c];
    for (; p + 8 <= hw; p += 8) {
        float8 v = (vload8(0, x + xo + at + p) - mean) * k + b;
        if (add) v = v + vload8(0, res + ro + at + p);
        vstore8(relu ? fmax(v, (float8)0.0f) : v, 0, y + yo + at + p);
    }
    for (; p < hw; p++) {
        float v = (x[xo + at + p] - mean) * k + b;
        if (add) v = v + res[ro + at + p];
        y[yo + at + p] = relu ? fmax(v, 0.0f) : v;
    }
}

kernel void bn_forward_eval_rows(global const float *x, uint xo, global const float *gamma,
                                 uint go, global const float *beta, uint bo,
                                 global const float *rmean, uint rmo, global const float *rvar,
                                 uint rvo, global const float *res, uint ro, global float *y,
                                 uint yo, uint n, uint c_count, uint hw, float eps, int add,
                                 int relu) {
    uint c = get_global_id(0), i = get_global_id(1);
    if (c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw, p = 0;
    float inv = 1.0f / sqrt(rvar[rvo + c] + eps), mean = rmean[rmo + c], g = gamma[go + c];
    float b = beta[bo + c];
    for (; p + 8 <= hw; p += 8) {
        float8 v = (vload8(0, x + xo + at + p) - mean) * inv * g + b;
        if (add) v = v + vload8(0, res + ro + at + p);
        vstore8(relu ? fmax(v, (float8)0.0f) : v, 0, y + yo + at + p);
    }
    for (; p < hw; p++) {
        float v = (x[xo + at + p] - mean) * inv * g + b;
        if (add) v = v + res[ro + at + p];
        y[yo + at + p] = relu ? fmax(v, 0.0f) : v;
    }
}

kernel void bn_backward_dx_rows(global const float *x, uint xo, global const float *gamma,
                                uint go, global const float *mean_t, uint mo,
                                global const float *stat_t, uint so, global const float *dy,
                                uint dyo, global const float *sums, uint sso, global float *dx,
                                uint dxo, uint n, uint c_count, uint hw, int train, float eps) {
    uint c = get_global_id(0), i = get_global_id(1);
    if (c >= c_count || i >= n) return;
    uint at = (i * c_count + c) * hw, p = 0;
    float inv = train ? stat_t[so + c] : 1.0f / sqrt(stat_t[so + c] + eps);
    float k = gamma[go + c] * inv;
    if (!train) {
        for (; p + 8 <= hw; p += 8)
            vstore8(k * vload8(0, dy + dyo + at + p), 0, dx + dxo + at + p);
        for (; p < hw; p++)
            dx[dxo + at + p] = k * dy[dyo + at + p];
        return;
    }
    float m = (float)n * (float)hw, mean = mean_t[mo + c];
    float a = sums[sso + 2 * c] / m, b = sums[sso + 2 * c + 1] / m;
    for (; p + 8 <= hw; p += 8) {
        float8 xh = (vload8(0, x + xo + at + p) - mean) * inv;
        vstore8(k * (vload8(0, dy + dyo + at + p) - a - xh * b), 0, dx + dxo + at + p);
    }
    for (; p < hw; p++) {
        float xh = (x[xo + at + p] - mean) * inv;
        dx[dxo + at + p] = k * (dy[dyo + at + p] - a - xh * b);
    }
}
