/* fewcl as an installed library: `cmake --install` to a temporary prefix, then
 * examples/classify.c and the C example of docs/api.md compiled with
 * `pkg-config --cflags --libs fewcl` only, run against libfewcl.so, and compared with the
 * installed `fewcl predict` on the same weights and images (the same classes and
 * probabilities, to the printed digit). Weights: conv4 at 16x16, 3-way 2-shot, initialised. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fewcl/fewcl.h"
#include "harness.h"

static char g_dir[64];

static int setup(void **state) {
    (void)state;
    if (th_glyph_folder(g_dir, sizeof g_dir, "install", 3, 0)) return -1;
    fewcl_model_config c = th_small_public_config(3, 2, 2);
    fewcl_model *m;
    if (fewcl_model_create(th_ctx(), &c, 1, &m) != FEWCL_OK) return -1;
    char weights[160];
    snprintf(weights, sizeof weights, "%s/w.safetensors", g_dir);
    fewcl_status st = fewcl_model_save(m, weights);
    fewcl_model_destroy(m);
    return st == FEWCL_OK ? 0 : -1;
}

static int teardown(void **state) { return th_glyph_teardown(g_dir, state); }

static void test_install_and_build(void **state) {
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cmake --install '%s' --prefix '%s/prefix' > /dev/null",
             FEWCL_BUILD_DIR, g_dir);
    th_sh(cmd);
    /* pkg-config only: the prefix's fewcl.pc, wherever the libdir is */
    const char *env = "cd %s && export PKG_CONFIG_PATH=$(dirname $(find prefix -name fewcl.pc)) "
                      "LD_LIBRARY_PATH=$(dirname $(find $PWD/prefix -name libfewcl.so)) && ";
    char pre[512];
    snprintf(pre, sizeof pre, env, g_dir);
    snprintf(cmd, sizeof cmd,
             "%s cc -Wall -Wextra -Werror '%s/examples/classify.c' "
             "$(pkg-config --cflags --libs fewcl) -o classify && "
             "awk '/^```c$/{f=1;next} /^```$/{if(f){exit}} f' '%s/docs/api.md' > hello.c && "
             "cc -Wall -Wextra -Werror hello.c $(pkg-config --cflags --libs fewcl) "
             "-o hello && ldd classify | grep -q \"$LD_LIBRARY_PATH/libfewcl.so\" && "
             /* each header stands alone, in C and in C++ */
             "for h in fewcl model jobs; do printf '#include <fewcl/%%s.h>\\n' $h > h.c && "
             "cc -Wall -Werror -fsyntax-only $(pkg-config --cflags fewcl) h.c && "
             "c++ -x c++ -Wall -Werror -fsyntax-only $(pkg-config --cflags fewcl) h.c || exit 1; "
             "done",
             pre, FEWCL_SOURCE_DIR, FEWCL_SOURCE_DIR);
    th_sh(cmd);
    /* the example and the installed tool on the same images: the same lines */
    snprintf(cmd, sizeof cmd, "%s ./classify w.safetensors support queries/*.png", pre);
    char *example = th_capture(cmd);
    snprintf(cmd, sizeof cmd,
             "%s prefix/bin/fewcl predict --weights w.safetensors --support support "
             "$(for f in queries/*.png; do echo --query $f; done)",
             pre);
    char *tool = th_capture(cmd);
    assert_string_equal(example, tool);
    int lines = 0;
    for (const char *p = example; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 6);
    /* the docs' example: two classes of two examples, one query of the first class */
    snprintf(cmd, sizeof cmd,
             "%s c=$(ls support | head -2 | tr '\\n' ' ') && set -- $c && "
             "./hello w.safetensors support/$1/00.png support/$1/01.png support/$2/00.png "
             "support/$2/01.png queries/$1-02.png",
             pre);
    char *hello = th_capture(cmd);
    float p;
    int label;
    if (sscanf(hello, "class %d, probability %f", &label, &p) != 2)
        fail_msg("docs example printed: %s", hello);
    assert_true(label == 0 || label == 1);
    assert_true(p >= 0.5f && p <= 1.0f); /* the larger of two probabilities */
    free(hello), free(tool), free(example);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_install_and_build),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
