/* `fewcl devices`: every platform and device with the limits that matter to fewcl. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static void print_json(const fewcl_device_info *d, int n) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        char index[32];
        snprintf(index, sizeof index, "%d:%d", d[i].platform_index, d[i].device_index);
        cJSON_AddStringToObject(o, "index", index);
        cJSON_AddStringToObject(o, "platform", d[i].platform);
        cJSON_AddStringToObject(o, "name", d[i].name);
        cJSON_AddStringToObject(o, "vendor", d[i].vendor);
        cJSON_AddStringToObject(o, "type", d[i].is_gpu ? "gpu" : d[i].is_cpu ? "cpu" : "other");
        cJSON_AddStringToObject(o, "device_version", d[i].device_version);
        cJSON_AddStringToObject(o, "opencl_c_version", d[i].c_version);
        cJSON_AddStringToObject(o, "driver_version", d[i].driver_version);
        cJSON_AddNumberToObject(o, "compute_units", d[i].compute_units);
        cJSON_AddNumberToObject(o, "clock_mhz", d[i].clock_mhz);
        cJSON_AddNumberToObject(o, "global_mem_bytes", (double)d[i].global_mem);
        cJSON_AddNumberToObject(o, "max_alloc_bytes", (double)d[i].max_alloc);
        cJSON_AddNumberToObject(o, "local_mem_bytes", (double)d[i].local_mem);
        cJSON_AddNumberToObject(o, "max_work_group", (double)d[i].max_work_group);
        cJSON_AddBoolToObject(o, "fp16", d[i].fp16);
        cJSON_AddBoolToObject(o, "fp64", d[i].fp64);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_Print(arr);
    if (text) puts(text);
    free(text);
    cJSON_Delete(arr);
}

int cmd_devices(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    while ((c = cli_getopt(argc, argv, "h", opts)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'h') {
            printf("usage: fewcl devices [--json]\n\nLists every OpenCL platform and device: type, "
                   "vendor, versions, compute units,\nclock, global/max-allocation/local memory, "
                   "work-group size, fp16/fp64.\n");
            return 0;
        } else
            return cli_bad_option("devices", c, argv, opts);
    }
    if (optind < argc) {
        fprintf(stderr, "fewcl devices: unexpected argument '%s'\n", argv[optind]);
        return EXIT_USAGE;
    }
    fewcl_device_info *d;
    int n;
    fewcl_status s = fewcl_list_devices(&d, &n);
    if (s != FEWCL_OK) return cli_fail("devices", s);
    if (json) {
        print_json(d, n);
        fewcl_free_device_list(d);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char g[32], m[32], l[32];
        printf("%d:%d  %s\n", d[i].platform_index, d[i].device_index, d[i].name);
        printf("      platform        %s\n", d[i].platform);
        printf("      type            %s\n", d[i].is_gpu ? "GPU" : d[i].is_cpu ? "CPU" : "other");
        printf("      vendor          %s\n", d[i].vendor);
        printf("      version         %s; %s; driver %s\n", d[i].device_version, d[i].c_version,
               d[i].driver_version);
        printf("      compute units   %u at %u MHz\n", d[i].compute_units, d[i].clock_mhz);
        printf("      global memory   %s (max allocation %s)\n",
               cli_bytes((double)d[i].global_mem, g, sizeof g),
               cli_bytes((double)d[i].max_alloc, m, sizeof m));
        printf("      local memory    %s, work-group up to %zu items\n",
               cli_bytes((double)d[i].local_mem, l, sizeof l), d[i].max_work_group);
        printf("      fp16 %s, fp64 %s\n", d[i].fp16 ? "yes" : "no", d[i].fp64 ? "yes" : "no");
    }
    if (n == 0) printf("no OpenCL devices\n");
    fewcl_free_device_list(d);
    return 0;
}
