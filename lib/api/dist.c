/* Public API: the process's place in an MPI job (lib/dist; docs/distributed.md §1). */
#include <stdio.h>

#include "../dist/dist.h"
#include "api.h"

fewcl_status fewcl_dist_init(int *argc, char ***argv, fewcl_dist_info *info) {
    const char *fn = "fewcl_dist_init";
    if (info) FCL_TRY(api_check_size(fn, "info", info->struct_size));
    int launched = fcl_dist_launched();
    if (launched > 1 && !fcl_dist_built())
        /* Each rank would run the whole job alone, and write the same files. */
        return fcl_fail(FEWCL_ERR_ARGUMENT,
                        "%s: started as one of %d ranks (mpirun/srun), but this fewcl was built "
                        "without MPI: rebuild with -DFEWCL_MPI=ON (Debian: libopenmpi-dev), or "
                        "run one process",
                        fn, launched);
    FCL_TRY(fcl_dist_start(argc, argv));
    if (info) {
        fcl_dist d;
        fcl_dist_world(&d);
        fewcl_dist_info full = {.struct_size = sizeof full,
                                .rank = d.rank,
                                .size = d.size,
                                .local_rank = d.local_rank,
                                .local_size = d.local_size,
                                .mpi_built = fcl_dist_built(),
                                .mpi_active = fcl_dist_active()};
        snprintf(full.host, sizeof full.host, "%s", d.host);
        api_copy_out(info, info->struct_size, &full, sizeof full);
    }
    return FEWCL_OK;
}

void fewcl_dist_finalize(void) { fcl_dist_stop(); }

void fewcl_dist_abort(int code, const char *msg) { fcl_dist_abort(code, msg); }

fewcl_status fewcl_dist_allgather(const void *mine, size_t bytes, void *all) {
    const char *fn = "fewcl_dist_allgather";
    API_REQUIRE(mine, fn, "mine");
    API_REQUIRE(all, fn, "all");
    fcl_dist d;
    fcl_dist_world(&d);
    return fcl_dist_allgather(&d, mine, bytes, all);
}
