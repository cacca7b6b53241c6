/* The parts of the distributed layer that do not depend on MPI (dist.h). */
#include "dist.h"

#include <stdlib.h>

static int env_int(const char *name) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : 0;
}

int fcl_dist_launched(void) {
    int n = env_int("OMPI_COMM_WORLD_SIZE"); /* mpirun of Open MPI */
    if (!n) n = env_int("PMI_SIZE");         /* PMI-1/2 launchers (srun --mpi=pmi2, MPICH) */
    if (!n && getenv("PMIX_RANK")) {         /* PMIx (srun --mpi=pmix, prterun) */
        n = env_int("SLURM_NTASKS");
        if (!n) n = env_int("SLURM_NPROCS");
        if (!n) n = 1; /* a PMIx launch whose size only MPI knows */
    }
    return n;
}

void fcl_dist_block(long n, int p, int parts, long *first, long *end) {
    long q = n / parts, r = n % parts;
    *first = p * q + (p < r ? p : r);
    *end = *first + q + (p < r);
}
