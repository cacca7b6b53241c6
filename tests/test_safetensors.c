/* safetensors: round trip, every validation error, and random corruptions (which must give
 * a clean error or a valid file, never a crash: ASan/UBSan watch this in CI). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "io/safetensors.h"

/* Builds a file image from a header string and a data block. */
static unsigned char *image(const char *header, const void *data, size_t data_len, size_t *len) {
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    unsigned char *b = malloc(*len);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    if (data_len) memcpy(b + 8 + h, data, data_len);
    return b;
}

static fewcl_status parse_text(const char *header, size_t data_len) {
    float data[64] = {0};
    size_t len;
    unsigned char *b = image(header, data, data_len, &len);
    fcl_safetensors *st;
    fewcl_status s = fcl_st_parse("test.safetensors", b, len, &st);
    fcl_st_free(st);
    return s;
}

static void test_round_trip(void **state) {
    char path[] = "/tmp/fewcl-st-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    fcl_st_writer *w = fcl_st_writer_new();
    float a[6] = {1, 2, 3, 4, 5, 6}, b[1] = {-7.5f};
    int64_t sa[2] = {2, 3}, sb[1] = {1};
    TH_OK(fcl_st_writer_add(w, "layer.weight", 2, sa, a));
    TH_OK(fcl_st_writer_add(w, "layer.bias", 1, sb, b));
    assert_int_equal(fcl_st_writer_add(w, "layer.bias", 1, sb, b), FEWCL_ERR_ARGUMENT);
    TH_OK(fcl_st_writer_meta(w, "config", "{\"backbone\": \"conv4\"}"));
    TH_OK(fcl_st_writer_save(w, path));
    fcl_st_writer_free(w);
    fcl_safetensors *st;
    TH_OK(fcl_st_load(path, &st));
    assert_int_equal(st->n, 2);
    const float *got;
    size_t n;
    TH_OK(fcl_st_f32(st, "layer.weight", 2, sa, &got, &n));
    assert_int_equal(n, 6);
    assert_memory_equal(got, a, sizeof a);
    TH_OK(fcl_st_f32(st, "layer.bias", 1, NULL, &got, &n));
    assert_true(got[0] == -7.5f);
    char meta[128];
    fcl_st_metadata_get(st, "config", meta, sizeof meta);
    assert_string_equal(meta, "{\"backbone\": \"conv4\"}");
    /* Wrong shape and missing tensor name the file, tensor and expectation. */
    int64_t wrong[2] = {3, 2};
    assert_int_equal(fcl_st_f32(st, "layer.weight", 2, wrong, &got, &n), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "has shape [2,3], expected [3,2]"));
    assert_int_equal(fcl_st_f32(st, "nope", 0, NULL, &got, &n), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "no tensor 'nope'"));
    fcl_st_free(st);
    unlink(path);
    assert_int_equal(fcl_st_load("/nonexistent/x.safetensors", &st), FEWCL_ERR_IO);
    assert_non_null(strstr(fewcl_last_error(), "/nonexistent/x.safetensors"));
}

static void test_unaligned_header_is_realigned(void **state) {
    /* A 3-byte-odd header from another writer: data must still read correctly. */
    float v[2] = {1.25f, -2.5f};
    const char *h = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    assert_true(strlen(h) % 8 != 0);
    size_t len;
    unsigned char *b = image(h, v, sizeof v, &len);
    fcl_safetensors *st;
    TH_OK(fcl_st_parse("odd", b, len, &st));
    const float *got;
    size_t n;
    TH_OK(fcl_st_f32(st, "x", 0, NULL, &got, &n));
    assert_true(((uintptr_t)got & 3) == 0);
    assert_true(got[0] == 1.25f && got[1] == -2.5f);
    fcl_st_free(st);
}

static void test_validation_errors(void **state) {
    struct {
        const char *header;
        size_t data;
        const char *message;
    } cases[] = {
        {"[1,2]", 0, "not a JSON object"},
        {"{\"x\":", 0, "not a JSON object"},
        {"{\"x\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "bad shape"},
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "lacks"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, "twice"},
        {"{\"__metadata__\":[1]}", 0, "__metadata__"},
        /* found by fuzz_safetensors: a second __metadata__ leaked the first */
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"},
        /* found by fuzzing the filelist's twin: out-of-range numbers were cast before checking */
        {"{\"x\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,4]}}", 4, "bad shape"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fewcl_status s = parse_text(cases[i].header, cases[i].data);
        if (s != FEWCL_ERR_FORMAT || !strstr(fewcl_last_error(), cases[i].message)) {
            fprintf(stderr, "case %zu: status %d, message '%s', wanted '%s'\n", i, s,
                    fewcl_last_error(), cases[i].message);
            fail();
        }
    }
    /* Too short, and a header length past the end. */
    unsigned char *b = malloc(4);
    memset(b, 0, 4);
    fcl_safetensors *st;
    assert_int_equal(fcl_st_parse("short", b, 4, &st), FEWCL_ERR_FORMAT);
    b = malloc(16);
    memset(b, 0xff, 16);
    assert_int_equal(fcl_st_parse("huge", b, 16, &st), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "does not fit"));
    /* F16 data is named, not silently converted. */
    uint16_t half[2] = {0, 0};
    size_t len;
    b = image("{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", half, 4, &len);
    TH_OK(fcl_st_parse("half", b, len, &st));
    const float *got;
    size_t n;
    assert_int_equal(fcl_st_f32(st, "h", 0, NULL, &got, &n), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "is F16"));
    fcl_st_free(st);
}

static void test_random_corruption_never_crashes(void **state) {
    float v[16];
    for (int i = 0; i < 16; i++)
        v[i] = (float)i;
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[32,64]},"
                    "\"__metadata__\":{\"k\":\"v\"}}";
    size_t len;
    unsigned char *clean = image(h, v, sizeof v, &len);
    uint64_t rng = 12345;
    int ok = 0, rejected = 0;
    for (int trial = 0; trial < 3000; trial++) {
        size_t cut = len;
        unsigned char *b = malloc(len);
        memcpy(b, clean, len);
        int flips = 1 + trial % 4;
        for (int f = 0; f < flips; f++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            b[(rng >> 33) % len] ^= (unsigned char)(1u << ((rng >> 20) % 8));
        }
        if (trial % 5 == 0) cut = (size_t)((rng >> 40) % len); /* truncation */
        fcl_safetensors *st;
        fewcl_status s = fcl_st_parse("fuzz", b, cut, &st);
        if (s == FEWCL_OK) {
            for (int i = 0; i < st->n; i++) { /* everything it accepted is readable */
                const float *d;
                size_t n;
                if (fcl_st_f32(st, st->tensors[i].name, 0, NULL, &d, &n) == FEWCL_OK && n)
                    (void)d[n - 1];
            }
            fcl_st_free(st);
            ok++;
        } else {
            assert_true(s == FEWCL_ERR_FORMAT || s == FEWCL_ERR_OUT_OF_MEMORY);
            rejected++;
        }
    }
    free(clean);
    assert_true(rejected > 1000); /* the corruptions were real */
    (void)ok;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_unaligned_header_is_realigned),
        cmocka_unit_test(test_validation_errors),
        cmocka_unit_test(test_random_corruption_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
