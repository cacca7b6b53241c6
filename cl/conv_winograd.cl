// Winograd transforms for the OpenCL path (lib/ops/conv_winograd_cl.c): F(2x2,3x3) (wino2_*)
// and, below, F(4x4,3x3) (wino4_*). The maths, the matrices Bᵀ, G, Aᵀ and the order of
// operations within a tile are those of the host path (lib/ops/conv_winograd_host.c,
// conv_winograd4_host.c), so that the rounding analysis of tests/test_conv_algo.c holds for
// both. A chunk of nb images, each cut into T = tiles_h x tiles_w tiles of m x m output pixels,
// has L = nb·T columns; q = i·T + t is image i's tile t. Layouts:
//     V[k][c][q]   transformed input (the data direction: its gradient dV, in place)
//     M[k][o][q]   transformed output (or the transformed output gradient)
//     U[k][o][c]   transformed weights (the weight direction: their gradient dU)
// k = α·row + column of the α x α transformed tile (α = m + 2). One work-item per tile (per
// m x m block of dx in grad_input), no loops but fixed ones of at most α² steps.

// G applied along three taps: (a, ½(a + b + c), ½(a − b + c), c), the sum a + c first.
float4 wino2_g(float a, float b, float c) {
    float even = a + c;
    return (float4)(a, 0.5f * (even + b), 0.5f * (even - b), c);
}

// Gᵀ applied along four entries.
float3 wino2_gt(float4 u) {
    float sum = 0.5f * (u.y + u.z);
    return (float3)(u.x + sum, 0.5f * (u.y - u.z), sum + u.w);
}

// Bᵀ applied along four entries (a row of a patch).
float4 wino2_bt(float4 d) { return (float4)(d.x - d.z, d.y + d.z, d.z - d.y, d.y - d.w); }

// B applied along four entries.
float4 wino2_b(float4 v) { return (float4)(v.x, v.y - v.z + v.w, v.y + v.z - v.x, -v.w); }

// U[k][o][c] = (G w[o][c] Gᵀ)[k], one item per (o, c).
kernel void wino2_weights(global const float *w, uint wo, global float *u, uint uo, uint pairs) {
    uint g = get_global_id(0);
    if (g >= pairs) return;
    global const float *f = w + wo + g * 9;
    float4 c0 = wino2_g(f[0], f[3], f[6]), c1 = wino2_g(f[1], f[4], f[7]);
    float4 c2 = wino2_g(f[2], f[5], f[8]); // G along the columns: row r of G w is (c0, c1, c2)[r]
    float4 r[4] = {wino2_g(c0.x, c1.x, c2.x), wino2_g(c0.y, c1.y, c2.y), wino2_g(c0.z, c1.z, c2.z),
                   wino2_g(c0.w, c1.w, c2.w)};
    global float *o = u + uo + g;
    for (uint i = 0; i < 4; i++) {
        o[(4 * i + 0) * pairs] = r[i].x, o[(4 * i + 1) * pairs] = r[i].y;
        o[(4 * i + 2) * pairs] = r[i].z, o[(4 * i + 3) * pairs] = r[i].w;
    }
}

// dW[o][c] += Gᵀ dU[o][c] G, one item per (o, c).
kernel void wino2_weight_grad(global const float *du, uint uo, global float *dw, uint wo,
                              uint pairs) {
    uint g = get_global_id(0);
    if (g >= pairs) return;
    float t[16];
    for (uint k = 0; k < 16; k++)
        t[k] = du[uo + k * pairs + g];
    // Gᵀ along the columns: half[r] = row r of Gᵀ dU, as the columns' results.
    float3 h0 = wino2_gt((float4)(t[0], t[4], t[8], t[12]));
    float3 h1 = wino2_gt((float4)(t[1], t[5], t[9], t[13]));
    float3 h2 = wino2_gt((float4)(t[2], t[6], t[10], t[14]));
    float3 h3 = wino2_gt((float4)(t[3], t[7], t[11], t[15]));
    float3 r0 = wino2_gt((float4)(h0.x, h1.x, h2.x, h3.x));
    float3 r1 = wino2_gt((float4)(h0.y, h1.y, h2.y, h3.y));
    float3 r2 = wino2_gt((float4)(h0.z, h1.z, h2.z, h3.z));
    global float *f = dw + wo + g * 9;
    f[0] += r0.x, f[1] += r0.y, f[2] += r0.z;
    f[3] += r1.x, f[4] += r1.y, f[5] += r1.z;
    f[6] += r2.x, f[7] += r2.y, f[8] += r2.z;
}

// V[k][c][q] = (Bᵀ d B)[k], d the 4x4 patch of tile q from (2·ty − pad, 2·tx − pad) of
// channel c of image n0 + i (zero outside the image). One item per (c, q).
kernel void wino2_input(global const float *x, uint xo, global float *v, uint vo, uint n0, uint cin,
                        uint h, uint w, uint pad, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cin * len) return;
    uint q = g % len, c = g / len, i = q / tiles, t = q % tiles;
    int y0 = (int)(2 * (t / tiles_w)) - (int)pad, x0 = (int)(2 * (t % tiles_w)) - (int)pad;
    global const float *plane = x + xo + ((n0 + i) * cin + c) * h * w;
    float4 d[4];
    for (int r = 0; r < 4; r++) {
        int ih = y0 + r;
        float e[4];
        for (int s = 0; s < 4; s++) {
            int iw = x0 + s;
            e[s] = ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)w ? plane[(uint)ih * w + (uint)iw]
                                                                    : 0.0f;
        }
        d[r] = (float4)(e[0], e[1], e[2], e[3]);
    }
    // Bᵀ over the patch rows (a row of Bᵀ d per result), then · B along each of them.
    float4 c4[4] = {d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]};
    global float *o = v + vo + g;
    uint ks = cin * len;
    for (uint r = 0; r < 4; r++) {
        float4 e = wino2_bt(c4[r]);
        o[(4 * r + 0) * ks] = e.x, o[(4 * r + 1) * ks] = e.y;
        o[(4 * r + 2) * ks] = e.z, o[(4 * r + 3) * ks] = e.w;
    }
}

// y = Aᵀ M A (+ b) for tile q of output channel o, the pixels inside the output. One item per
// (o, q).
kernel void wino2_output(global const float *m, uint mo, global float *y, uint yo,
                         global const float *b, uint bo, int has_bias, uint n0, uint cout, uint oh,
                         uint ow, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cout * len) return;
    uint q = g % len, o = g / len, i = q / tiles, t = q % tiles;
    uint y0 = 2 * (t / tiles_w), x0 = 2 * (t % tiles_w), ks = cout * len;
    global const float *in = m + mo + g;
    float4 r[4]; // the rows of M
    for (uint k = 0; k < 4; k++)
        r[k] = (float4)(in[(4 * k) * ks], in[(4 * k + 1) * ks], in[(4 * k + 2) * ks],
                        in[(4 * k + 3) * ks]);
    float bias = has_bias ? b[bo + o] : 0.0f;
    float4 a0 = r[0] + r[1] + r[2], a1 = r[1] - r[2] - r[3]; // Aᵀ over the tile rows
    global float *out = y + yo + ((n0 + i) * cout + o) * oh * ow;
    float2 top = (float2)(a0.x + a0.y + a0.z + bias, a0.y - a0.z - a0.w + bias);
    float2 bottom = (float2)(a1.x + a1.y + a1.z + bias, a1.y - a1.z - a1.w + bias);
    out[y0 * ow + x0] = top.x;
    if (x0 + 1 < ow) out[y0 * ow + x0 + 1] = top.y;
    if (y0 + 1 < oh) {
        out[(y0 + 1) * ow + x0] = bottom.x;
        if (x0 + 1 < ow) out[(y0 + 1) * ow + x0 + 1] = bottom.y;
    }
}

// M[k][o][q] = (A dY Aᵀ)[k], dY the 2x2 block of dy at tile q (zero past the output). One item
// per (o, q).
kernel void wino2_grad_output(global const float *dy, uint dyo, global float *m, uint mo, uint n0,
                              uint cout, uint oh, uint ow, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cout * len) return;
    uint q = g % len, o = g / len, i = q / tiles, t = q % tiles;
    uint y0 = 2 * (t / tiles_w), x0 = 2 * (t % tiles_w), ks = cout * len;
    global const float *in = dy + dyo + ((n0 + i) * cout + o) * oh * ow;
    int right = x0 + 1 < ow, below = y0 + 1 < oh;
    float2 d0 = (float2)(in[y0 * ow + x0], right ? in[y0 * ow + x0 + 1] : 0.0f);
    float2 d1 = below ? (float2)(in[(y0 + 1) * ow + x0], right ? in[(y0 + 1) * ow + x0 + 1] : 0.0f)
                      : (float2)(0.0f, 0.0f);
    float2 a[4] = {d0, d0 + d1, d0 - d1, -d1}; // A over the block rows
    global float *out = m + mo + g;
    for (uint r = 0; r < 4; r++) { // · Aᵀ along the block columns
        float2 e = a[r];
        out[(4 * r + 0) * ks] = e.x, out[(4 * r + 1) * ks] = e.x + e.y;
        out[(4 * r + 2) * ks] = e.x - e.y, out[(4 * r + 3) * ks] = -e.y;
    }
}

// B dV Bᵀ of tile (ty, tx) of the column block `at` (= c·L + i·T), its rows r and r + 1 at the
// patch columns s and s + 1 ({r, s} in {0, 2}), as (row r, row r + 1) x (s, s + 1).
float4 wino2_grad_patch(global const float *v, uint at, uint ks, uint tiles_w, uint ty, uint tx,
                        uint r, uint s) {
    global const float *in = v + at + ty * tiles_w + tx;
    float4 rows[4];
    for (uint k = 0; k < 4; k++)
        rows[k] = (float4)(in[(4 * k) * ks], in[(4 * k + 1) * ks], in[(4 * k + 2) * ks],
                           in[(4 * k + 3) * ks]);
    // B over the tile rows (row j of B dV), then · Bᵀ along the rows wanted.
    float4 b[4] = {rows[0], rows[1] - rows[2] + rows[3], rows[1] + rows[2] - rows[0], -rows[3]};
    float4 e0 = wino2_b(b[r]), e1 = wino2_b(b[r + 1]);
    return s == 0 ? (float4)(e0.x, e0.y, e1.x, e1.y) : (float4)(e0.z, e0.w, e1.z, e1.w);
}

// dx = Σ_tiles B dV Bᵀ placed at each tile's 4x4 patch, as a gather: one item per 2x2 block
// (by, bx) of the padded plane (rows 2·by, 2·by + 1 from −pad), which the patches of tiles
// (by − 1 and by) x (bx − 1 and bx) cover, where they exist. Summed as the host path does: the
// left tile's term, then the right one's, per tile row; the upper tile row, then the lower.
// dV is read from V's place. One item per (i, c, by, bx), by <= tiles_h, bx <= tiles_w.
kernel void wino2_grad_input(global const float *v, uint vo, global float *dx, uint dxo, uint n0,
                             uint nb, uint cin, uint h, uint w, uint pad, uint tiles_h,
                             uint tiles_w, uint len) {
    uint g = get_global_id(0), bw = tiles_w + 1, bh = tiles_h + 1;
    if (g >= nb * cin * bh * bw) return;
    uint bx = g % bw, by = (g / bw) % bh, c = (g / (bw * bh)) % cin, i = g / (bw * bh * cin);
    uint ks = cin * len, at = vo + c * len + i * tiles_h * tiles_w;
    float4 upper = (float4)(0.0f), lower = (float4)(0.0f); // (row 0: s, s+1; row 1: s, s+1)
    int has_upper = 0, has_lower = 0;
    for (uint which = 0; which < 2; which++) {
        if ((which == 0 && by == 0) || (which == 1 && by == tiles_h)) continue;
        uint ty = which == 0 ? by - 1 : by, r = which == 0 ? 2 : 0;
        float4 sum = (float4)(0.0f);
        int any = 0;
        if (bx > 0) sum = wino2_grad_patch(v, at, ks, tiles_w, ty, bx - 1, r, 2), any = 1;
        if (bx < tiles_w) {
            float4 right = wino2_grad_patch(v, at, ks, tiles_w, ty, bx, r, 0);
            sum = any ? sum + right : right;
        }
        if (which == 0)
            upper = sum, has_upper = 1;
        else
            lower = sum, has_lower = 1;
    }
    float4 s = has_upper && has_lower ? upper + lower : has_upper ? upper : lower;
    int ih = (int)(2 * by) - (int)pad, iw = (int)(2 * bx) - (int)pad;
    global float *out = dx + dxo + ((n0 + i) * cin + c) * h * w;
    float vals[4] = {s.x, s.y, s.z, s.w};
    for (int k = 0; k < 4; k++) {
        int y = ih + k / 2, x = iw + k % 2;
        if (y >= 0 && y < (int)h && x >= 0 && x < (int)w) out[(uint)y * w + (uint)x] = vals[k];
    }
}

// ---- F(4x4,3x3): 6x6 transformed tiles, 36 planes k = 6·row + column; the matrices and the
// order of operations of lib/ops/conv_winograd4_host.c, except the weights' transforms, which
// run here in float (the host path's run in double): see tests/test_conv_algo.c's counts. ----

constant float wino4_G[6][3] = {{0.25f, 0.0f, 0.0f},
                                {-1.0f / 6, -1.0f / 6, -1.0f / 6},
                                {-1.0f / 6, 1.0f / 6, -1.0f / 6},
                                {1.0f / 24, 1.0f / 12, 1.0f / 6},
                                {1.0f / 24, -1.0f / 12, 1.0f / 6},
                                {0.0f, 0.0f, 1.0f}};

// o[i·t] = (Bᵀ d)[i], d read at stride s
void wino4_bt(const float *d, int s, float *o, int t) {
    float d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    o[0] = 4 * d0 - 5 * d2 + d4;
    o[t] = -4 * d1 - 4 * d2 + d3 + d4;
    o[2 * t] = 4 * d1 - 4 * d2 - d3 + d4;
    o[3 * t] = -2 * d1 - d2 + 2 * d3 + d4;
    o[4 * t] = 2 * d1 - d2 - 2 * d3 + d4;
    o[5 * t] = 4 * d1 - 5 * d3 + d5;
}
// B v
void wino4_b(const float *v, int s, float *o, int t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s], v4 = v[4 * s], v5 = v[5 * s];
    o[0] = 4 * v0;
    o[t] = -4 * v1 + 4 * v2 - 2 * v3 + 2 * v4 + 4 * v5;
    o[2 * t] = -5 * v0 - 4 * v1 - 4 * v2 - v3 - v4;
    o[3 * t] = v1 - v2 + 2 * v3 - 2 * v4 - 5 * v5;
    o[4 * t] = v0 + v1 + v2 + v3 + v4;
    o[5 * t] = v5;
}
// Aᵀ m
void wino4_at(const float *m, int s, float *o, int t) {
    float m0 = m[0], m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s], m5 = m[5 * s];
    o[0] = m0 + m1 + m2 + m3 + m4;
    o[t] = m1 - m2 + 2 * m3 - 2 * m4;
    o[2 * t] = m1 + m2 + 4 * m3 + 4 * m4;
    o[3 * t] = m1 - m2 + 8 * m3 - 8 * m4 + m5;
}
// A v
void wino4_a(const float *v, int s, float *o, int t) {
    float v0 = v[0], v1 = v[s], v2 = v[2 * s], v3 = v[3 * s];
    o[0] = v0;
    o[t] = v0 + v1 + v2 + v3;
    o[2 * t] = v0 - v1 + v2 - v3;
    o[3 * t] = v0 + 2 * v1 + 4 * v2 + 8 * v3;
    o[4 * t] = v0 - 2 * v1 + 4 * v2 - 8 * v3;
    o[5 * t] = v3;
}

// U[k][o][c] = (G w[o][c] Gᵀ)[k], one item per (o, c).
kernel void wino4_weights(global const float *w, uint wo, global float *u, uint uo, uint pairs) {
    uint g = get_global_id(0);
    if (g >= pairs) return;
    global const float *f = w + wo + g * 9;
    float gw[6][3];
    for (int a = 0; a < 6; a++)
        for (int c = 0; c < 3; c++)
            gw[a][c] = wino4_G[a][0] * f[c] + wino4_G[a][1] * f[3 + c] + wino4_G[a][2] * f[6 + c];
    for (int a = 0; a < 6; a++)
        for (int b = 0; b < 6; b++)
            u[uo + (uint)(6 * a + b) * pairs + g] =
                gw[a][0] * wino4_G[b][0] + gw[a][1] * wino4_G[b][1] + gw[a][2] * wino4_G[b][2];
}

// dW[o][c] += Gᵀ dU[o][c] G, one item per (o, c).
kernel void wino4_weight_grad(global const float *du, uint uo, global float *dw, uint wo,
                              uint pairs) {
    uint g = get_global_id(0);
    if (g >= pairs) return;
    float gtu[3][6]; // Gᵀ dU
    for (int r = 0; r < 3; r++)
        for (int b = 0; b < 6; b++) {
            float sum = 0.0f;
            for (int a = 0; a < 6; a++)
                sum += wino4_G[a][r] * du[uo + (uint)(6 * a + b) * pairs + g];
            gtu[r][b] = sum;
        }
    global float *f = dw + wo + g * 9;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            float sum = 0.0f;
            for (int b = 0; b < 6; b++)
                sum += gtu[r][b] * wino4_G[b][c];
            f[3 * r + c] += sum;
        }
}

// V[k][c][q] = (Bᵀ d B)[k], d the 6x6 patch of tile q from (4·ty − pad, 4·tx − pad) of
// channel c of image n0 + i (zero outside the image). One item per (c, q).
kernel void wino4_input(global const float *x, uint xo, global float *v, uint vo, uint n0, uint cin,
                        uint h, uint w, uint pad, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cin * len) return;
    uint q = g % len, c = g / len, i = q / tiles, t = q % tiles;
    int y0 = (int)(4 * (t / tiles_w)) - (int)pad, x0 = (int)(4 * (t % tiles_w)) - (int)pad;
    global const float *plane = x + xo + ((n0 + i) * cin + c) * h * w;
    float d[36], e[36], o6[6];
    for (int r = 0; r < 6; r++)
        for (int s = 0; s < 6; s++) {
            int ih = y0 + r, iw = x0 + s;
            d[6 * r + s] = ih >= 0 && ih < (int)h && iw >= 0 && iw < (int)w
                               ? plane[(uint)ih * w + (uint)iw]
                               : 0.0f;
        }
    for (int s = 0; s < 6; s++) // Bᵀ over the patch rows, column s
        wino4_bt(d + s, 6, e + s, 6);
    global float *o = v + vo + g;
    uint ks = cin * len;
    for (int a = 0; a < 6; a++) { // · B along row a
        wino4_bt(e + 6 * a, 1, o6, 1);
        for (int b = 0; b < 6; b++)
            o[(uint)(6 * a + b) * ks] = o6[b];
    }
}

// y = Aᵀ M A (+ b) for tile q of output channel o, the pixels inside the output. One item per
// (o, q).
kernel void wino4_output(global const float *m, uint mo, global float *y, uint yo,
                         global const float *b, uint bo, int has_bias, uint n0, uint cout, uint oh,
                         uint ow, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cout * len) return;
    uint q = g % len, o = g / len, i = q / tiles, t = q % tiles;
    uint y0 = 4 * (t / tiles_w), x0 = 4 * (t % tiles_w), ks = cout * len;
    float in[36], a[24], row[4];
    for (int k = 0; k < 36; k++)
        in[k] = m[mo + (uint)k * ks + g];
    for (int c = 0; c < 6; c++) // Aᵀ over the tile rows, column c
        wino4_at(in + c, 6, a + c, 6);
    float bias = has_bias ? b[bo + o] : 0.0f;
    global float *out = y + yo + ((n0 + i) * cout + o) * oh * ow;
    for (uint r = 0; r < 4 && y0 + r < oh; r++) {
        wino4_at(a + 6 * r, 1, row, 1); // · A along row r
        for (uint s = 0; s < 4 && x0 + s < ow; s++)
            out[(y0 + r) * ow + x0 + s] = row[s] + bias;
    }
}

// M[k][o][q] = (A dY Aᵀ)[k], dY the 4x4 block of dy at tile q (zero past the output). One item
// per (o, q).
kernel void wino4_grad_output(global const float *dy, uint dyo, global float *m, uint mo, uint n0,
                              uint cout, uint oh, uint ow, uint tiles_w, uint tiles, uint len) {
    uint g = get_global_id(0);
    if (g >= cout * len) return;
    uint q = g % len, o = g / len, i = q / tiles, t = q % tiles;
    uint y0 = 4 * (t / tiles_w), x0 = 4 * (t % tiles_w), ks = cout * len;
    global const float *in = dy + dyo + ((n0 + i) * cout + o) * oh * ow;
    float d[16], a[24], o6[6];
    for (uint r = 0; r < 4; r++)
        for (uint s = 0; s < 4; s++)
            d[4 * r + s] = y0 + r < oh && x0 + s < ow ? in[(y0 + r) * ow + x0 + s] : 0.0f;
    for (int c = 0; c < 4; c++) // A over the block rows, column c
        wino4_a(d + c, 4, a + c, 4);
    global float *out = m + mo + g;
    for (int r = 0; r < 6; r++) { // · Aᵀ along row r
        wino4_a(a + 4 * r, 1, o6, 1);
        for (int s = 0; s < 6; s++)
            out[(uint)(6 * r + s) * ks] = o6[s];
    }
}

// dx = Σ_tiles B dV Bᵀ placed at each tile's 6x6 patch, as a gather: one item per 4x4 block
// (by, bx) of the padded plane (rows 4·by .. 4·by + 3 from −pad), which the patches of tiles
// (by − 1 and by) x (bx − 1 and bx) cover where they exist (the earlier tiles' rows and
// columns 4 and 5). Summed upper-left, upper-right, lower-left, lower-right, as the host path
// does. dV is read from V's place. One item per (i, c, by, bx), by <= tiles_h, bx <= tiles_w.
kernel void wino4_grad_input(global const float *v, uint vo, global float *dx, uint dxo, uint n0,
                             uint nb, uint cin, uint h, uint w, uint pad, uint tiles_h,
                             uint tiles_w, uint len) {
    uint g = get_global_id(0), bw = tiles_w + 1, bh = tiles_h + 1;
    if (g >= nb * cin * bh * bw) return;
    uint bx = g % bw, by = (g / bw) % bh, c = (g / (bw * bh)) % cin, i = g / (bw * bh * cin);
    uint ks = cin * len, at = vo + c * len + i * tiles_h * tiles_w;
    float acc[16], in[36], b[36], e[36];
    for (int k = 0; k < 16; k++)
        acc[k] = 0.0f;
    for (uint tile = 0; tile < 4; tile++) {
        uint up = tile < 2, left = tile % 2 == 0;
        if ((up && by == 0) || (!up && by == tiles_h) || (left && bx == 0) ||
            (!left && bx == tiles_w))
            continue;
        uint ty = up ? by - 1 : by, tx = left ? bx - 1 : bx;
        for (uint k = 0; k < 36; k++)
            in[k] = v[at + k * ks + ty * tiles_w + tx];
        for (int q = 0; q < 6; q++) // B over the tile rows, column q
            wino4_b(in + q, 6, b + q, 6);
        for (int r = 0; r < 6; r++) // · Bᵀ along row r
            wino4_b(b + 6 * r, 1, e + 6 * r, 1);
        // The block's rows r = 0..3 are the patch's rows r (+ 4 for the upper tile).
        uint r0 = up ? 4 : 0, s0 = left ? 4 : 0, rows = up ? 2 : 4, cols = left ? 2 : 4;
        for (uint r = 0; r < rows; r++)
            for (uint s = 0; s < cols; s++)
                acc[4 * r + s] += e[6 * (r0 + r) + s0 + s];
    }
    int ih = (int)(4 * by) - (int)pad, iw = (int)(4 * bx) - (int)pad;
    global float *out = dx + dxo + ((n0 + i) * cin + c) * h * w;
    for (int k = 0; k < 16; k++) {
        int y = ih + k / 4, x = iw + k % 4;
        if (y >= 0 && y < (int)h && x >= 0 && x < (int)w) out[(uint)y * w + (uint)x] = acc[k];
    }
}
