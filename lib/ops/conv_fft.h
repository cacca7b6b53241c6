/* clFFT for the FFT convolution (conv_fft.c): the library set up while any context uses it,
 * plans cached per context and plane shape, and a probe that decides once per context
 * whether clFFT works on its device (docs/architecture.md §4.4).
 *
 * A plane is fh x fw reals stored in place: fh rows of 2·(fw/2 + 1) floats; its spectrum is
 * fh x (fw/2 + 1) complex numbers in the same floats. Transforms are batched over `batch`
 * consecutive planes. Every clFFT call of the process goes through one lock: two contexts
 * on two threads may transform at once. Built without clFFT (FEWCL_CLFFT undefined), the
 * probe says so and the FFT convolution is never eligible. */
#ifndef FEWCL_OPS_CONV_FFT_H
#define FEWCL_OPS_CONV_FFT_H

#include "ops.h"

/* The smallest n' >= n (n' >= 2; even when `even`) with no prime factor above 7: the plane
 * lengths clFFT transforms in one plan. */
int fcl_conv_fft_length(int n, int even);

/* 1 when clFFT transforms correctly on ctx's device (probed on the first call: a round trip
 * of two planes against a double DFT), else 0 with the reason in fcl_conv_fft_why. */
int fcl_conv_fft_usable(fewcl_context *ctx);
const char *fcl_conv_fft_why(const fewcl_context *ctx);

/* Bytes of temporary buffer clFFT's plan for (fh, fw, batch, inverse) takes (0: none);
 * bakes the plan (cached). */
fewcl_status fcl_conv_fft_tmp_bytes(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    size_t *bytes);

/* Transforms `batch` planes in place in `buf` (forward: real → spectrum; inverse: spectrum
 * → real, unscaled: fh·fw times the inverse DFT), `tmp` the plan's temporary buffer (NULL
 * when it takes none). Enqueued on ctx's queue. */
fewcl_status fcl_conv_fft_transform(fewcl_context *ctx, int fh, int fw, int batch, int inverse,
                                    cl_mem buf, cl_mem tmp);

/* For tests: forgets ctx's probe and probes again with a fault injected (0: none; 1: clFFT's
 * setup fails; 2: its results are wrong), as an implementation where clFFT fails would. */
void fcl_conv_fft_reprobe(fewcl_context *ctx, int fault);

#endif
