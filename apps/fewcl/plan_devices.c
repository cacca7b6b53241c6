/* `fewcl plan --devices L`: the plan of one replica on each device of a list, and what each
 * physical device holds when entries repeat (replicas on one device share its memory). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct replica_plan {
    fewcl_device_info info;
    fewcl_plan_result r;
    uint64_t budget;
} replica_plan;

static int same(const fewcl_device_info *a, const fewcl_device_info *b) {
    return a->platform_index == b->platform_index && a->device_index == b->device_index;
}

/* Plans every entry (one context per distinct device). */
static fewcl_status plan_all(const fewcl_device_info *list, int n, const fewcl_model_config *cfg,
                             const fewcl_plan_params *base, replica_plan *out) {
    fewcl_status s = FEWCL_OK;
    for (int i = 0; i < n && s == FEWCL_OK; i++) {
        out[i].info = list[i];
        int earlier = -1;
        for (int j = 0; j < i && earlier < 0; j++)
            if (same(&list[i], &list[j])) earlier = j;
        if (earlier >= 0) { /* the same device: the same plan */
            out[i].r = out[earlier].r, out[i].budget = out[earlier].budget;
            continue;
        }
        char index[32];
        snprintf(index, sizeof index, "%d:%d", list[i].platform_index, list[i].device_index);
        fewcl_context *ctx;
        s = fewcl_context_create(index, &ctx);
        if (s != FEWCL_OK) break;
        fewcl_plan_params p = *base;
        fewcl_plan_info info = {.struct_size = sizeof info};
        p.info = &info;
        out[i].r.struct_size = sizeof out[i].r;
        s = fewcl_plan(ctx, cfg, &p, &out[i].r);
        out[i].budget = info.budget;
        fewcl_context_destroy(ctx);
    }
    return s;
}

/* Replicas on the device of entry i, the sum of their footprints; 0 when an earlier entry
 * names the device (counted there). */
static int device_total(const replica_plan *rp, int n, int i, uint64_t *sum, int *fits) {
    for (int j = 0; j < i; j++)
        if (same(&rp[i].info, &rp[j].info)) return 0;
    int k = 0;
    *sum = 0;
    *fits = 1;
    for (int j = i; j < n; j++)
        if (same(&rp[i].info, &rp[j].info)) {
            k++;
            *sum += rp[j].r.reserved_bytes;
            *fits = *fits && rp[j].r.fits;
        }
    *fits = *fits && *sum <= rp[i].budget;
    return k;
}

int plan_devices(const char *devices, const fewcl_model_config *cfg, const fewcl_plan_params *base,
                 int json) {
    fewcl_device_info *list;
    int n;
    fewcl_status s = fewcl_parse_device_list(devices, &list, &n);
    if (s != FEWCL_OK) return cli_fail("plan", s);
    replica_plan *rp = calloc((size_t)n, sizeof *rp);
    s = rp ? plan_all(list, n, cfg, base, rp) : FEWCL_ERR_OUT_OF_MEMORY;
    fewcl_free_device_list(list);
    if (s != FEWCL_OK) {
        free(rp);
        return cli_fail("plan", s);
    }
    int all_fit = 1;
    cJSON *o = json ? cJSON_CreateObject() : NULL, *reps = NULL, *devs = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "mode", base->training ? "training" : "evaluation");
        reps = cJSON_AddArrayToObject(o, "replicas");
        devs = cJSON_AddArrayToObject(o, "devices");
    } else {
        printf("plan: one %s episode per replica, each replica holding a copy of the model\n",
               base->training ? "training" : "evaluation");
        printf("  %-8s %-7s %-34s %12s %12s\n", "replica", "device", "name", "live peak",
               "footprint");
    }
    for (int i = 0; i < n; i++) {
        char index[32], a[32], b[32];
        snprintf(index, sizeof index, "%d:%d", rp[i].info.platform_index, rp[i].info.device_index);
        if (o) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddNumberToObject(r, "replica", i + 1);
            cJSON_AddStringToObject(r, "device", index);
            cJSON_AddStringToObject(r, "name", rp[i].info.name);
            cJSON_AddNumberToObject(r, "peak_bytes", (double)rp[i].r.peak_bytes);
            cJSON_AddNumberToObject(r, "footprint_bytes", (double)rp[i].r.reserved_bytes);
            cJSON_AddItemToArray(reps, r);
        } else {
            printf("  %-8d %-7s %-34.34s %12s %12s\n", i + 1, index, rp[i].info.name,
                   cli_bytes((double)rp[i].r.peak_bytes, a, sizeof a),
                   cli_bytes((double)rp[i].r.reserved_bytes, b, sizeof b));
        }
    }
    for (int i = 0; i < n; i++) {
        uint64_t sum;
        int fits, k = device_total(rp, n, i, &sum, &fits);
        if (!k) continue;
        all_fit = all_fit && fits;
        char index[32], a[32], b[32];
        snprintf(index, sizeof index, "%d:%d", rp[i].info.platform_index, rp[i].info.device_index);
        if (o) {
            cJSON *d = cJSON_CreateObject();
            cJSON_AddStringToObject(d, "device", index);
            cJSON_AddStringToObject(d, "name", rp[i].info.name);
            cJSON_AddNumberToObject(d, "replicas", k);
            cJSON_AddNumberToObject(d, "footprint_bytes", (double)sum);
            cJSON_AddNumberToObject(d, "budget_bytes", (double)rp[i].budget);
            cJSON_AddBoolToObject(d, "fits", fits);
            cJSON_AddItemToArray(devs, d);
        } else {
            printf("device %s (%s): %d replica%s, %s of %s: %s\n", index, rp[i].info.name, k,
                   k == 1 ? "" : "s", cli_bytes((double)sum, a, sizeof a),
                   cli_bytes((double)rp[i].budget, b, sizeof b),
                   fits ? "fits" : "does not fit (fewer replicas on it, or `fewcl plan --fit`)");
        }
    }
    if (o) {
        cJSON_AddBoolToObject(o, "fits", all_fit);
        char *text = cJSON_Print(o);
        if (text) puts(text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("fits: %s\n", all_fit ? "yes" : "no");
    }
    free(rp);
    return all_fit ? 0 : 1;
}
