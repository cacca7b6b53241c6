// Shared by every kernel family: fewcl prepends this file to each cl/<family>.cl when it
// builds the program (lib/runtime/context.c), so helpers live here once.

// Work-group reductions: every item passes its partial value and gets the combined result.
// A fixed-order tree in local memory, so results are deterministic run to run. The work-group
// size must be a power of two (fcl_wg_1d); `scratch` holds one float per item and is free
// again when the call returns.
float group_sum(float v, local float *scratch) {
    uint l = get_local_id(0), wg = get_local_size(0);
    scratch[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg / 2; s > 0; s /= 2) {
        if (l < s) scratch[l] += scratch[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE); // scratch is reused by the next call
    return r;
}

float group_max(float v, local float *scratch) {
    uint l = get_local_id(0), wg = get_local_size(0);
    scratch[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = wg / 2; s > 0; s /= 2) {
        if (l < s) scratch[l] = fmax(scratch[l], scratch[l + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = scratch[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}
