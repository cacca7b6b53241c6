/* Device lists (`--devices all|P:D,P:D,...`): the devices one process runs replicas on
 * (docs/design/scale-out.md, part 2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver_allocs.h"
#include "runtime.h"

#ifndef CL_DEVICE_PCI_BUS_INFO_KHR
#define CL_DEVICE_PCI_BUS_INFO_KHR 0x410F /* cl_khr_pci_bus_info */
#endif

#define MAX_LISTED 64

/* "domain:bus:device.function" from cl_khr_pci_bus_info, or "" where the driver gives none. */
static void pci_address(int pi, int di, char *out, size_t cap) {
    out[0] = 0;
    cl_platform_id plats[16];
    cl_uint np = 0;
    if (FCL_DRIVER_KEEPS(clGetPlatformIDs(16, plats, &np)) != CL_SUCCESS || pi < 0 ||
        (cl_uint)pi >= np)
        return;
    cl_device_id devs[64];
    cl_uint nd = 0;
    if (clGetDeviceIDs(plats[pi], CL_DEVICE_TYPE_ALL, 64, devs, &nd) != CL_SUCCESS || di < 0 ||
        (cl_uint)di >= nd)
        return;
    cl_uint bus[4]; /* cl_device_pci_bus_info_khr: domain, bus, device, function */
    if (clGetDeviceInfo(devs[di], CL_DEVICE_PCI_BUS_INFO_KHR, sizeof bus, bus, NULL) == CL_SUCCESS)
        snprintf(out, cap, "%04x:%02x:%02x.%x", bus[0], bus[1], bus[2], bus[3]);
}

/* Whether device b, on a later platform than a, is a second view of a: the same vendor and
 * name, and the same PCI address where both drivers give one (ICD loaders may show one GPU
 * through its vendor's platform and through a generic one). */
static int same_device(const fewcl_device_info *a, const char *pci_a, const fewcl_device_info *b,
                       const char *pci_b) {
    if (a->platform_index == b->platform_index) return 0; /* a platform lists a device once */
    if (strcmp(a->vendor, b->vendor) != 0 || strcmp(a->name, b->name) != 0) return 0;
    return !pci_a[0] || !pci_b[0] || strcmp(pci_a, pci_b) == 0;
}

/* `all`: every GPU, else every CPU device, each physical device once. */
static fewcl_status list_all(const fewcl_device_info *d, int n, fewcl_device_info *out,
                             int *count) {
    char pci[MAX_LISTED][32]; /* of the devices kept */
    *count = 0;
    for (int want_gpu = 1; want_gpu >= 0 && *count == 0; want_gpu--)
        for (int i = 0; i < n && *count < MAX_LISTED; i++) {
            if (want_gpu ? !d[i].is_gpu : !d[i].is_cpu) continue;
            char mine[32];
            pci_address(d[i].platform_index, d[i].device_index, mine, sizeof mine);
            int seen = 0;
            for (int j = 0; j < *count && !seen; j++)
                seen = same_device(&out[j], pci[j], &d[i], mine);
            if (seen) continue;
            snprintf(pci[*count], sizeof pci[0], "%s", mine);
            out[(*count)++] = d[i];
        }
    return FEWCL_OK;
}

/* One "P:D" entry of an explicit list; -1 when it is not of that form or names no device. */
static int parse_entry(const char *entry, size_t len, const fewcl_device_info *d, int n) {
    char text[32];
    if (len == 0 || len >= sizeof text) return -1;
    memcpy(text, entry, len);
    text[len] = 0;
    int p, dev, used = 0;
    if (sscanf(text, "%d:%d%n", &p, &dev, &used) != 2 || text[used] != 0) return -1;
    for (int i = 0; i < n; i++)
        if (d[i].platform_index == p && d[i].device_index == dev) return i;
    return -2;
}

fewcl_status fcl_device_list_parse(const char *text, fewcl_device_info **out, int *count) {
    *out = NULL;
    *count = 0;
    if (!text || !*text)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "--devices: empty list (give all, or P:D,P:D,... "
                                            "from `fewcl devices`)");
    fewcl_device_info *d;
    int n;
    FCL_TRY(fewcl_list_devices(&d, &n));
    fewcl_device_info *list = calloc(MAX_LISTED, sizeof *list);
    char known[4096] = "";
    fcl_device_list_describe(d, n, known, sizeof known);
    fewcl_status s = list ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "a device list");
    if (s == FEWCL_OK && strcmp(text, "all") == 0) {
        list_all(d, n, list, count);
        if (*count == 0)
            s = fcl_fail(FEWCL_ERR_NO_DEVICE,
                         "--devices all: no GPU and no CPU device among the devices:%s", known);
    } else if (s == FEWCL_OK) {
        int entry = 0;
        for (const char *p = text; s == FEWCL_OK; entry++) {
            size_t len = strcspn(p, ",");
            int i = parse_entry(p, len, d, n);
            if (i < 0)
                s = fcl_fail(i == -1 ? FEWCL_ERR_ARGUMENT : FEWCL_ERR_NO_DEVICE,
                             "--devices '%s': entry %d '%.*s' %s; give all, or a comma-separated "
                             "list of P:D indices (an entry may repeat). Devices:%s",
                             text, entry + 1, (int)len, p,
                             i == -1 ? "is not a P:D index (platform:device)" : "names no device",
                             known);
            else if (*count == MAX_LISTED)
                s = fcl_fail(FEWCL_ERR_ARGUMENT, "--devices '%s': more than %d entries", text,
                             MAX_LISTED);
            else
                list[(*count)++] = d[i];
            if (!p[len]) break;
            p += len + 1;
        }
    }
    fewcl_free_device_list(d);
    if (s != FEWCL_OK) {
        free(list);
        *count = 0;
        return s;
    }
    *out = list;
    return FEWCL_OK;
}

fewcl_status fewcl_parse_device_list(const char *text, fewcl_device_info **out, int *count) {
    if (!out || !count)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "fewcl_parse_device_list: out and count are required");
    return fcl_device_list_parse(text, out, count);
}
