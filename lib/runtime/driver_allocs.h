/* Calls into the OpenCL drivers that allocate memory the drivers keep until exit, on fewcl's
 * thread: the ICD loader's platform enumeration (rusticl's and Clover's one-time device tables),
 * PoCL finishing a build on a cold kernel cache, clFFT's generated kernel sources. In sanitizer
 * builds LeakSanitizer ignores what such a call allocates, so the tests keep its fast unwinder:
 * matching these by suppression needs whole stacks through drivers built without frame
 * pointers, the slow unwinder on every malloc, which made the sanitizer run five times slower.
 * fewcl's own leaks, and OpenCL objects it creates and never releases, are allocated outside
 * these calls and still reported (tests/planted_leak.c). */
#ifndef FEWCL_DRIVER_ALLOCS_H
#define FEWCL_DRIVER_ALLOCS_H

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define FCL_LEAK_CHECKED 1
#elif defined(__has_feature) /* clang */
#if __has_feature(address_sanitizer)
#define FCL_LEAK_CHECKED 1
#endif
#endif

#ifdef FCL_LEAK_CHECKED
#include <sanitizer/lsan_interface.h>
#define FCL_DRIVER_KEEPS(call) (__lsan_disable(), fcl_driver_kept_((call)))
static inline int fcl_driver_kept_(int result) {
    __lsan_enable();
    return result;
}
#else
#define FCL_DRIVER_KEEPS(call) (call)
#endif

#endif
