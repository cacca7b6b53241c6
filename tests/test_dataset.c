/* Datasets: FS-CT JSON filelists and image folders — grouping, path resolution, every
 * validation message, episode feasibility, and random corruptions (no crash, clean errors). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/dataset.h"
#include "harness.h"

static fewcl_status parse(const char *text, fcl_dataset **d) {
    return fcl_dataset_parse_json("base.json", text, strlen(text), "/data", d);
}

static void test_json_groups_by_sorted_label(void **state) {
    const char *text =
        "{\"label_names\": [\"cat\", \"dog\", \"eel\"],"
        " \"image_names\": [\"d/1.jpg\", \"/abs/c1.jpg\", \"e/1.jpg\", \"d/2.jpg\", \"c/2.jpg\"],"
        " \"image_labels\": [1, 0, 2, 1, 0]}";
    fcl_dataset *d;
    TH_OK(parse(text, &d));
    assert_int_equal(d->n_classes, 3);
    assert_int_equal(d->n_images, 5);
    assert_string_equal(d->class_names[0], "cat");
    assert_string_equal(d->class_names[2], "eel");
    assert_int_equal(d->class_count[1], 2);
    /* File order inside a class; absolute paths kept, relative ones joined to the root. */
    assert_string_equal(d->paths[d->class_start[0]], "/abs/c1.jpg");
    assert_string_equal(d->paths[d->class_start[0] + 1], "/data/c/2.jpg");
    assert_string_equal(d->paths[d->class_start[1]], "/data/d/1.jpg");
    assert_string_equal(d->paths[d->class_start[1] + 1], "/data/d/2.jpg");
    assert_int_equal(fcl_dataset_check_episode(d, 3, 1, 1), FEWCL_ERR_ARGUMENT); /* eel: 1 image */
    fcl_dataset_free(d);
}

static void test_episode_feasibility(void **state) {
    const char *text = "{\"image_names\": [\"a\", \"b\", \"c\", \"d\", \"e\"],"
                       " \"image_labels\": [0, 0, 0, 7, 7]}";
    fcl_dataset *d;
    TH_OK(parse(text, &d));
    assert_string_equal(d->class_names[1], "7"); /* no label_names: the label itself */
    TH_OK(fcl_dataset_check_episode(d, 2, 1, 1));
    assert_int_equal(fcl_dataset_check_episode(d, 3, 1, 1), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "has 2 classes, fewer than --n-way 3"));
    assert_int_equal(fcl_dataset_check_episode(d, 2, 2, 1), FEWCL_ERR_ARGUMENT);
    assert_non_null(strstr(fewcl_last_error(), "class '7' has 2 images"));
    assert_int_equal(fcl_dataset_check_episode(d, 0, 1, 1), FEWCL_ERR_ARGUMENT);
    fcl_dataset_free(d);
}

static void test_json_errors_name_the_problem(void **state) {
    struct {
        const char *text, *message;
    } cases[] = {
        {"[1, 2]", "not a JSON object"},
        {"{\"image_names\": [\"a\"]}", "missing array \"image_labels\""},
        {"{\"image_labels\": [0]}", "missing array \"image_names\""},
        {"{\"image_names\": [\"a\", \"b\"], \"image_labels\": [0]}",
         "2 image_names but 1 image_labels"},
        {"{\"image_names\": [], \"image_labels\": []}", "no images"},
        {"{\"image_names\": [\"a\", 3], \"image_labels\": [0, 0]}", "image_names[1] is not"},
        {"{\"image_names\": [\"a\", \"\"], \"image_labels\": [0, 0]}", "image_names[1] is not"},
        {"{\"image_names\": [\"a\"], \"image_labels\": [\"0\"]}", "image_labels[0] is not a label"},
        {"{\"image_names\": [\"a\"], \"image_labels\": [1.5]}", "image_labels[0] is not a label"},
        {"{\"image_names\": [\"a\"], \"image_labels\": [-1]}", "image_labels[0] is not a label"},
        /* found by fuzz_filelist: casting 1e300 to int before the range check was undefined */
        {"{\"image_names\": [\"a\"], \"image_labels\": [1e300]}", "image_labels[0] is not a label"},
        {"{\"image_names\": [\"a\"], \"image_labels\": [0], \"label_names\": 3}", "label_names"},
        {"{\"image_names\": [\"a\",], \"image_labels\": [0]}", "invalid JSON near byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fcl_dataset *d = NULL;
        fewcl_status s = parse(cases[i].text, &d);
        if (s != FEWCL_ERR_FORMAT || !strstr(fewcl_last_error(), cases[i].message) ||
            !strstr(fewcl_last_error(), "base.json")) {
            fprintf(stderr, "case %zu: status %d, '%s', wanted '%s'\n", i, s, fewcl_last_error(),
                    cases[i].message);
            fail();
        }
        assert_null(d);
    }
    fcl_dataset *d;
    assert_int_equal(fcl_dataset_load_json("/nonexistent/novel.json", NULL, &d), FEWCL_ERR_IO);
    assert_non_null(strstr(fewcl_last_error(), "/nonexistent/novel.json"));
}

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void test_folder_dataset(void **state) {
    char root[] = "/tmp/fewcl-folder-XXXXXX", p[512];
    assert_non_null(mkdtemp(root));
    const char *files[] = {"b_class/2.PNG",     "b_class/1.jpg",       "a_class/x.jpeg",
                           "a_class/notes.txt", "a_class/.hidden.jpg", "c_class/only.bmp"};
    const char *dirs[] = {"a_class", "b_class", "c_class", ".git"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", root, dirs[i]);
        mkdir(p, 0755);
    }
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", root, files[i]);
        touch(p);
    }
    fcl_dataset *d;
    TH_OK(fcl_dataset_load_folder(root, &d));
    assert_int_equal(d->n_classes, 3);
    assert_string_equal(d->class_names[0], "a_class");
    assert_int_equal(d->class_count[0], 1); /* notes.txt and .hidden.jpg skipped */
    assert_int_equal(d->class_count[1], 2);
    snprintf(p, sizeof p, "%s/b_class/1.jpg", root);
    assert_string_equal(d->paths[d->class_start[1]], p); /* sorted: 1.jpg before 2.PNG */
    fcl_dataset_free(d);
    /* An empty class folder is an error naming it. */
    snprintf(p, sizeof p, "%s/d_empty", root);
    mkdir(p, 0755);
    assert_int_equal(fcl_dataset_load_folder(root, &d), FEWCL_ERR_FORMAT);
    assert_non_null(strstr(fewcl_last_error(), "d_empty holds no images"));
    assert_int_equal(fcl_dataset_load_folder("/nonexistent/folder", &d), FEWCL_ERR_IO);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

static void test_random_corruption_never_crashes(void **state) {
    const char *clean = "{\"label_names\": [\"a\", \"b\"], \"image_names\": [\"x/1.jpg\", "
                        "\"y/2.jpg\", \"x/3.jpg\"], \"image_labels\": [0, 1, 0]}";
    size_t len = strlen(clean);
    uint64_t rng = 99;
    int rejected = 0;
    for (int trial = 0; trial < 3000; trial++) {
        char *t = malloc(len + 1);
        memcpy(t, clean, len + 1);
        for (int f = 0; f < 1 + trial % 3; f++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            t[(rng >> 33) % len] = (char)(rng >> 50); /* any byte, NUL included */
        }
        size_t cut = trial % 7 == 0 ? (size_t)((rng >> 20) % len) : len;
        fcl_dataset *d;
        fewcl_status s = fcl_dataset_parse_json("fuzz.json", t, cut, "/r", &d);
        if (s == FEWCL_OK) {
            for (int i = 0; i < d->n_images; i++)
                assert_non_null(d->paths[i]);
            fcl_dataset_free(d);
        } else {
            assert_int_equal(s, FEWCL_ERR_FORMAT);
            rejected++;
        }
        free(t);
    }
    assert_true(rejected > 1000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_groups_by_sorted_label),
        cmocka_unit_test(test_episode_feasibility),
        cmocka_unit_test(test_json_errors_name_the_problem),
        cmocka_unit_test(test_folder_dataset),
        cmocka_unit_test(test_random_corruption_never_crashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
