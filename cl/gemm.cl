// Split-K GEMM for long-K products with a small result, C[m, n] = alpha·A·Bᵀ + beta·C with
// A [m, k] and B [n, k] row-major (k contiguous in both): the convolutions' weight gradient
// dW[Cout, taps] = dy[Cout, N]·cols[taps, N]ᵀ, N up to 10^5. CLBlast tiles only the result,
// so a 64x27 result ran on a couple of work-groups; here K is cut into slices, work-group
// (tile, slice) writes a partial product, and gemm_splitk_sum adds the slices in order.
//
// A work-group of 16x16 items computes a 64x64 tile of C, each item a 4x4 block (rows
// ty + 16·r, columns tx + 16·c), over k in steps of 16 staged in local memory.

#define TS 64
#define TK 16

kernel __attribute__((reqd_work_group_size(16, 16, 1))) void
gemm_nt_partial(global const float *a, uint ao, uint lda, global const float *b, uint bo,
                uint ldb, global float *part, uint po, uint m, uint n, uint k, uint slice) {
    local float as[TK][TS + 1], bs[TK][TS + 1]; // k-major: the inner loop reads along a row
    uint tx = get_local_id(0), ty = get_local_id(1), flat = ty * 16 + tx;
    uint j0 = get_group_id(0) * TS, i0 = get_group_id(1) * TS, s = get_group_id(2);
    uint kb = s * slice, ke = min(kb + slice, k);
    float acc[4][4];
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++)
            acc[r][c] = 0.0f;
    for (uint k0 = kb; k0 < ke; k0 += TK) {
        // 64 rows x 16 k of each operand, 4 values per item; 16 items read 16 adjacent k
        for (uint l = flat; l < TS * TK; l += 256) {
            uint row = l / TK, q = l % TK, kk = k0 + q;
            as[q][row] = i0 + row < m && kk < ke ? a[ao + (i0 + row) * lda + kk] : 0.0f;
            bs[q][row] = j0 + row < n && kk < ke ? b[bo + (j0 + row) * ldb + kk] : 0.0f;
        }
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
    for (uint r = 0; r < 4; r++)
        for (uint c = 0; c < 4; c++) {
            uint i = i0 + ty + 16 * r, j = j0 + tx + 16 * c;
            if (i < m && j < n) part[po + ((size_t)s * m + i) * n + j] = acc[r][c];
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
