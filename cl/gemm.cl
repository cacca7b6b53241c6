// fewcl's own GEMM for GPUs: C = alpha·op(A)·op(B) + beta·C, row-major, op(A) [m, k],
// op(B) [k, n], compiled once per transposition pair (-DTA=0|1 -DTB=0|1). CLBlast 1.5 (the
// Debian package) reached ~13 TFLOP/s end to end on an H200 and tiles only the result, so a
// convolution's weight gradient (a 64x27 result over k = 183,456) ran on a couple of
// work-groups; this kernel also cuts k into slices (split-K): work-group (tile, z) computes
// slice z's partial product and gemm_splitk_sum adds the slices in order. Without a split, z
// is the batch index of a strided batched product and the result goes straight into C.
//
// A work-group of 16x16 items computes a 64x64 tile of C, each item a 4x4 block (rows
// ty + 16·r, columns tx + 16·c), over k in steps of 16 staged in local memory; each operand's
// tile is read along its contiguous dimension.

#define TS 64
#define TK 16

#ifndef TA
#define TA 0
#endif
#ifndef TB
#define TB 1
#endif

// Stages a 64 (rows) x 16 (k) tile of an operand into t[k][row]. kmajor: the operand is
// stored [rows][k] (k contiguous), else [k][rows].
#define STAGE(t, p, ld, r0, rows, kmajor)                                                          \
    for (uint l = flat; l < TS * TK; l += 256) {                                                   \
        uint row = kmajor ? l / TK : l % TS, q = kmajor ? l % TK : l / TS, kk = k0 + q;            \
        t[q][row] = r0 + row < rows && kk < ke                                                     \
                        ? p[kmajor ? (size_t)(r0 + row) * ld + kk : (size_t)kk * ld + r0 + row]   \
                        : 0.0f;                                                                    \
    }

// out[z·slab + i·ldo + j] = alpha·Σ_k op(A)[i,k]·op(B)[k,j] (+ beta·out when beta ≠ 0) over
// this slice of k; with slices = 1, z picks the batch (operands stride_a/stride_b apart).
kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
gemm_tiled(global const float *a, uint ao, uint lda, uint stride_a, global const float *b, uint bo,
           uint ldb, uint stride_b, global float *out, uint oo, uint ldo, uint slab, uint m, uint n,
           uint k, uint slice, uint slices, float alpha, float beta) {
    local float as[TK][TS + 1], bs[TK][TS + 1]; // k-major: the inner loop reads along a row
    uint tx = get_local_id(0), ty = get_local_id(1), flat = ty * 16 + tx;
    uint j0 = get_group_id(0) * TS, i0 = get_group_id(1) * TS, z = get_group_id(2);
    uint s = slices > 1 ? z : 0, batch = slices > 1 ? 0 : z;
    uint kb = s * slice, ke = min(kb + slice, k);
    global const float *pa = a + ao + (size_t)batch * stride_a;
    global const float *pb = b + bo + (size_t)batch * stride_b;
    float acc[4][4];
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++)
            acc[r][c] = 0.0f;
    for (uint k0 = kb; k0 < ke; k0 += TK) {
        STAGE(as, pa, lda, i0, m, !TA)
        STAGE(bs, pb, ldb, j0, n, TB)
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint q = 0; q < TK; q++) {
            float av[4], bv[4];
            for (uint r = 0; r < 4; r++)
                av[r] = as[q][ty + 16 * r], bv[r] = bs[q][tx + 16 * r];
            for (uint r = 0; r < 4; r++)
                for (uint c = 0; c < 4; c++)
                    acc[r][c] += av[r] * bv[c];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    global float *po = out + oo + (size_t)z * slab;
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++) {
            uint i = i0 + ty + 16 * r, j = j0 + tx + 16 * c;
            if (i >= m || j >= n) continue;
            float v = alpha * acc[r][c];
            if (beta != 0.0f) v += beta * po[(size_t)i * ldo + j];
            po[(size_t)i * ldo + j] = v;
        }
}

// C[i, j] = alpha·Σ_s part[s, i, j] (slices in order) + beta·C[i, j] (C not read when beta
// is 0, as BLAS).
kernel void gemm_splitk_sum(global const float *part, uint po, global float *c, uint co, uint ldc,
                            uint m, uint n, uint slices, float alpha, float beta) {
    uint j = get_global_id(0), i = get_global_id(1);
    if (i >= m || j >= n) return;
    float s = 0.0f;
    for (uint t = 0; t < slices; t++)
        s += part[po + ((size_t)t * m + i) * n + j];
    float v = alpha * s;
    if (beta != 0.0f) v += beta * c[co + i * ldc + j];
    c[co + i * ldc + j] = v;
}
