/* A deliberate leak: a context created and never destroyed (its struct, the OpenCL context and
 * queue, the arena's buffers). Registered only under FEWCL_SANITIZE, where the expected
 * outcome is LeakSanitizer's report naming fewcl_context_create; it proves that the driver
 * suppressions of tests/lsan.supp (which this run also exercises: listing the platforms loads
 * every installed driver) do not hide fewcl's own leaks. */
#include <stdio.h>

#include "fewcl/fewcl.h"

int main(void) {
    fewcl_context *ctx = NULL;
    if (fewcl_context_create(NULL, &ctx) != FEWCL_OK) {
        fprintf(stderr, "planted_leak: no device: %s\n", fewcl_last_error());
        return 1;
    }
    printf("planted_leak: context created on purpose and not destroyed\n");
    ctx = NULL; /* BUG (planted): the only pointer to the context is dropped */
    return 0;
}
