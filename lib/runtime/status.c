/* Status codes and the per-thread error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "runtime.h"

static _Thread_local char g_message[4096];

const char *fewcl_status_name(fewcl_status s) {
    switch (s) {
    case FEWCL_OK: return "ok";
    case FEWCL_ERR_ARGUMENT: return "bad argument";
    case FEWCL_ERR_NO_DEVICE: return "no such device";
    case FEWCL_ERR_OPENCL: return "OpenCL error";
    case FEWCL_ERR_BUILD: return "kernel build failed";
    case FEWCL_ERR_OUT_OF_MEMORY: return "out of memory";
    case FEWCL_ERR_IO: return "I/O error";
    case FEWCL_ERR_FORMAT: return "bad file format";
    case FEWCL_ERR_NUMERIC: return "numerical failure";
    case FEWCL_ERR_INTERNAL: return "internal error";
    case FEWCL_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

const char *fewcl_last_error(void) { return g_message; }

static fewcl_status set_message(fewcl_status s, const char *prefix, const char *fmt, va_list ap) {
    char body[sizeof g_message];
    vsnprintf(body, sizeof body, fmt, ap);
    snprintf(g_message, sizeof g_message, "%s%s", prefix, body);
    return s;
}

fewcl_status fcl_fail(fewcl_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(s, "", fmt, ap);
    va_end(ap);
    return s;
}

fewcl_status fcl_wrap(fewcl_status s, const char *fmt, ...) {
    char old[sizeof g_message], prefix[512];
    memcpy(old, g_message, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    snprintf(g_message, sizeof g_message, "%s: %s", prefix, old);
    return s;
}

const char *fcl_cl_error_name(cl_int err) {
    switch (err) {
#define E(x)                                                                                       \
    case x: return #x;
        E(CL_SUCCESS)
        E(CL_DEVICE_NOT_FOUND) E(CL_DEVICE_NOT_AVAILABLE) E(CL_COMPILER_NOT_AVAILABLE) E(
            CL_MEM_OBJECT_ALLOCATION_FAILURE) E(CL_OUT_OF_RESOURCES) E(CL_OUT_OF_HOST_MEMORY)
            E(CL_PROFILING_INFO_NOT_AVAILABLE) E(CL_MEM_COPY_OVERLAP) E(CL_IMAGE_FORMAT_MISMATCH) E(
                CL_IMAGE_FORMAT_NOT_SUPPORTED) E(CL_BUILD_PROGRAM_FAILURE) E(CL_MAP_FAILURE)
                E(CL_MISALIGNED_SUB_BUFFER_OFFSET) E(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST) E(
                    CL_COMPILE_PROGRAM_FAILURE) E(CL_LINKER_NOT_AVAILABLE) E(CL_LINK_PROGRAM_FAILURE)
                    E(CL_DEVICE_PARTITION_FAILED) E(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) E(
                        CL_INVALID_VALUE) E(CL_INVALID_DEVICE_TYPE) E(CL_INVALID_PLATFORM)
                        E(CL_INVALID_DEVICE) E(CL_INVALID_CONTEXT) E(CL_INVALID_QUEUE_PROPERTIES) E(
                            CL_INVALID_COMMAND_QUEUE) E(CL_INVALID_HOST_PTR) E(CL_INVALID_MEM_OBJECT)
                            E(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) E(CL_INVALID_IMAGE_SIZE) E(
                                CL_INVALID_SAMPLER) E(CL_INVALID_BINARY) E(CL_INVALID_BUILD_OPTIONS)
                                E(CL_INVALID_PROGRAM) E(CL_INVALID_PROGRAM_EXECUTABLE) E(
                                    CL_INVALID_KERNEL_NAME) E(CL_INVALID_KERNEL_DEFINITION)
                                    E(CL_INVALID_KERNEL) E(CL_INVALID_ARG_INDEX) E(
                                        CL_INVALID_ARG_VALUE) E(CL_INVALID_ARG_SIZE)
                                        E(CL_INVALID_KERNEL_ARGS) E(CL_INVALID_WORK_DIMENSION) E(
                                            CL_INVALID_WORK_GROUP_SIZE) E(CL_INVALID_WORK_ITEM_SIZE)
                                            E(CL_INVALID_GLOBAL_OFFSET) E(
                                                CL_INVALID_EVENT_WAIT_LIST) E(CL_INVALID_EVENT)
                                                E(CL_INVALID_OPERATION) E(CL_INVALID_GL_OBJECT) E(
                                                    CL_INVALID_BUFFER_SIZE) E(CL_INVALID_MIP_LEVEL)
                                                    E(CL_INVALID_GLOBAL_WORK_SIZE)
                                                        E(CL_INVALID_PROPERTY) E(
                                                            CL_INVALID_IMAGE_DESCRIPTOR)
                                                            E(CL_INVALID_COMPILER_OPTIONS) E(
                                                                CL_INVALID_LINKER_OPTIONS)
                                                                E(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef E
                                                                    case -1001
            : return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL driver installed)";
    }
    return "unknown OpenCL error";
}

fewcl_status fcl_fail_cl(cl_int err, const char *fmt, ...) {
    char what[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int oom = err == CL_MEM_OBJECT_ALLOCATION_FAILURE || err == CL_OUT_OF_HOST_MEMORY ||
              err == CL_INVALID_BUFFER_SIZE;
    const char *hint = "";
    if (err == CL_OUT_OF_RESOURCES)
        hint = " (the device ran out of resources: often an out-of-bounds access in a kernel or "
               "too little device memory; try a smaller episode or FEWCL_DEVICE_PROFILE=gpu)";
    else if (oom)
        hint = " (device memory exhausted: lower the episode size or --reduced-dim, or run "
               "`fewcl plan` to see what fits)";
    return fcl_fail(oom ? FEWCL_ERR_OUT_OF_MEMORY : FEWCL_ERR_OPENCL, "%s: OpenCL error %s (%d)%s",
                    what, fcl_cl_error_name(err), (int)err, hint);
}
