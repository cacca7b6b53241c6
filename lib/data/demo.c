/* Rendering the demo glyph dataset (see demo.h). */
#include "demo.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stb_image_write.h>
#include <stb_truetype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FACES 32

/* Scripts and the split they belong to. Lookalikes across scripts (Latin A, Greek Α,
 * Cyrillic А) stay within base, so the novel and val alphabets hold no duplicate shapes; the
 * extra Latin, IPA and Cyrillic letters that copy a Greek lower-case letter (val) are left out
 * (`lookalikes`). The base alphabets are many on purpose: more base classes, better transfer. */
static const struct script {
    const char *name;
    int first, last, split; /* code point range, split 0 base / 1 val / 2 novel */
} scripts[] = {
    {"latin_upper", 0x41, 0x5a, 0},      {"latin_lower", 0x61, 0x7a, 0},
    {"greek_upper", 0x391, 0x3a9, 0},    {"cyrillic_upper", 0x410, 0x42f, 0},
    {"cyrillic_lower", 0x430, 0x44f, 0}, {"arrows", 0x2190, 0x21ff, 0},
    {"math", 0x2200, 0x22ff, 0},         {"hebrew", 0x5d0, 0x5ea, 1},
    {"greek_lower", 0x3b1, 0x3c9, 1},    {"armenian_lower", 0x561, 0x586, 2},
    {"georgian", 0x10d0, 0x10fa, 2},     {"lao", 0xe81, 0xeae, 1},
    {"latin_1", 0xc0, 0xff, 0},          {"latin_ext_a", 0x100, 0x17f, 0},
    {"latin_ext_b", 0x180, 0x24f, 0},    {"ipa", 0x250, 0x2af, 0},
    {"cyrillic_ext", 0x460, 0x52f, 0},
};
static const int lookalikes[] = {
    0xdf,                                     /* ß  β */
    0xf0,                                     /* ð  δ */
    0x131,                                    /* ı  ι */
    0x138,                                    /* ĸ  κ */
    0x14b,                                    /* ŋ  η */
    0x18d,                                    /* ƍ  δ */
    0x194,                                    /* Ɣ  γ */
    0x19b,                                    /* ƛ  λ */
    0x19e,                                    /* ƞ  η */
    0x1b1,                                    /* Ʊ  υ */
    0x251,                                    /* ɑ  α */
    0x25b,                                    /* ɛ  ε */
    0x263,                                    /* ɣ  γ */
    0x264,                                    /* ɤ  γ */
    0x269,                                    /* ɩ  ι */
    0x277,                                    /* ɷ  ω */
    0x278,                                    /* ɸ  φ */
    0x28a,                                    /* ʊ  υ */
    0x28b,                                    /* ʋ  υ */
    0x460, 0x461,                             /* Ѡ ѡ  ω */
    0x46e, 0x46f,                             /* Ѯ ѯ  ξ */
    0x470, 0x471,                             /* Ѱ ѱ  ψ */
    0x472, 0x473,                             /* Ѳ ѳ  θ */
    0x474, 0x475, 0x476, 0x477,               /* Ѵ ѵ  ν */
    0x47a, 0x47b, 0x47c, 0x47d, 0x47e, 0x47f, /* round omega, omega with titlo, ot: ω */
};

static int is_lookalike(int cp) {
    for (size_t i = 0; i < sizeof lookalikes / sizeof *lookalikes; i++)
        if (lookalikes[i] == cp) return 1;
    return 0;
}
static const char *split_names[3] = {"base", "val", "novel"};

typedef struct face {
    unsigned char *data;
    stbtt_fontinfo info;
} face;

static uint64_t next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s, double lo, double hi) {
    return lo + (hi - lo) * (double)(next(s) >> 11) * 0x1.0p-53;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loads every .ttf of the folder, sorted by name so that face i is the same everywhere. */
static int load_faces(const char *dir, face *faces) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    char *names[MAX_FACES];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < MAX_FACES;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".ttf") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int loaded = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        free(names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        unsigned char *data = len > 0 ? malloc((size_t)len) : NULL;
        int ok = data && fread(data, 1, (size_t)len, f) == (size_t)len &&
                 stbtt_InitFont(&faces[loaded].info, data, stbtt_GetFontOffsetForIndex(data, 0));
        fclose(f);
        if (!ok) {
            free(data);
            continue;
        }
        faces[loaded++].data = data;
    }
    return loaded;
}

/* Draws code point `cp` of `f` into a size x size grey image (white paper, dark ink) under a
 * random rotation (±12°), shear (±0.2), scale (0.8–1.1) and shift (±6% of the side).
 * Returns 0 when the face has no visible glyph for it. */
static int draw(const face *f, int cp, int size, uint64_t *rng, unsigned char *out) {
    int glyph = stbtt_FindGlyphIndex(&f->info, cp);
    if (!glyph) return 0;
    float scale = stbtt_ScaleForPixelHeight(&f->info, (float)size);
    int bw, bh, xo, yo;
    unsigned char *bmp = stbtt_GetGlyphBitmap(&f->info, scale, scale, glyph, &bw, &bh, &xo, &yo);
    if (!bmp || bw < 2 || bh < 2) {
        stbtt_FreeBitmap(bmp, NULL);
        return 0;
    }
    double fit = 0.62 * size / (bw > bh ? bw : bh) * uniform(rng, 0.8, 1.1);
    double th = uniform(rng, -0.21, 0.21), sh = uniform(rng, -0.2, 0.2);
    double dx = uniform(rng, -0.06, 0.06) * size, dy = uniform(rng, -0.06, 0.06) * size;
    /* Forward map glyph → image: p = fit·R(th)·[[1, sh], [0, 1]]·(q − cq) + c + d. The inverse
     * takes each image pixel back to glyph coordinates for a bilinear lookup. */
    double c = cos(th), s = sin(th);
    double a = fit * c, b = fit * (c * sh - s), cc = fit * s, d = fit * (s * sh + c);
    double det = a * d - b * cc;
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            double px = x + 0.5 - size / 2.0 - dx, py = y + 0.5 - size / 2.0 - dy;
            double qx = (d * px - b * py) / det + bw / 2.0 - 0.5;
            double qy = (-cc * px + a * py) / det + bh / 2.0 - 0.5;
            int x0 = (int)floor(qx), y0 = (int)floor(qy);
            double fx = qx - x0, fy = qy - y0, ink = 0;
            for (int j = 0; j < 2; j++)
                for (int i = 0; i < 2; i++) {
                    int sx = x0 + i, sy = y0 + j;
                    if (sx < 0 || sy < 0 || sx >= bw || sy >= bh) continue;
                    ink += bmp[sy * bw + sx] * (i ? fx : 1 - fx) * (j ? fy : 1 - fy);
                }
            out[y * size + x] = (unsigned char)(255.0 - ink + 0.5);
        }
    stbtt_FreeBitmap(bmp, NULL);
    return 1;
}

static fewcl_status write_json(const char *path, cJSON *root) {
    char *text = cJSON_Print(root);
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = text ? fopen(tmp, "w") : NULL;
    int ok = f && fputs(text, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    free(text);
    if (!ok || rename(tmp, path) != 0)
        return fcl_fail(FEWCL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return FEWCL_OK;
}

fewcl_status fcl_demo_render(const fcl_demo_options *opt, fcl_demo_summary *summary) {
    memset(summary, 0, sizeof *summary);
    const char *font_dir = opt->font_dir ? opt->font_dir : FCL_DEMO_FONT_DIR;
    if (opt->images_per_class < 1 || opt->size < 8 || opt->size > 1024)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "demo: %d images per class at %d pixels",
                        opt->images_per_class, opt->size);
    face faces[MAX_FACES];
    int n_faces = load_faces(font_dir, faces);
    if (n_faces < opt->min_faces || n_faces == 0)
        return fcl_fail(FEWCL_ERR_IO,
                        "demo: found %d fonts in %s, need %d (install "
                        "fonts-dejavu-core and fonts-dejavu-extra)",
                        n_faces, font_dir, opt->min_faces);
    summary->faces = n_faces;
    if (fcl_mkdirs(opt->out_dir) != 0)
        return fcl_fail(FEWCL_ERR_IO, "demo: cannot create %s: %s", opt->out_dir, strerror(errno));
    cJSON *lists[3];
    for (int s = 0; s < 3; s++) {
        lists[s] = cJSON_CreateObject();
        cJSON_AddArrayToObject(lists[s], "label_names");
        cJSON_AddArrayToObject(lists[s], "image_names");
        cJSON_AddArrayToObject(lists[s], "image_labels");
    }
    unsigned char *pix = malloc((size_t)opt->size * opt->size);
    fewcl_status st = pix ? FEWCL_OK : fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "demo");
    uint64_t rng = opt->seed;
    for (size_t sc = 0; sc < sizeof scripts / sizeof *scripts && st == FEWCL_OK; sc++) {
        const struct script *S = &scripts[sc];
        for (int cp = S->first; cp <= S->last && st == FEWCL_OK; cp++) {
            if (is_lookalike(cp)) continue;
            int have[MAX_FACES], n_have = 0;
            for (int f = 0; f < n_faces; f++)
                if (stbtt_FindGlyphIndex(&faces[f].info, cp)) have[n_have++] = f;
            if (n_have < opt->min_faces) continue;
            cJSON *L = lists[S->split];
            int label = cJSON_GetArraySize(cJSON_GetObjectItem(L, "label_names"));
            char name[64], dir[1024];
            snprintf(name, sizeof name, "%s/U+%04X", S->name, cp);
            snprintf(dir, sizeof dir, "%s/images/%s", opt->out_dir, name);
            if (fcl_mkdirs(dir) != 0) {
                st = fcl_fail(FEWCL_ERR_IO, "demo: cannot create %s: %s", dir, strerror(errno));
                break;
            }
            int written = 0;
            for (int i = 0; written < opt->images_per_class && i < 4 * opt->images_per_class; i++) {
                if (!draw(&faces[have[i % n_have]], cp, opt->size, &rng, pix)) continue;
                char rel[128], path[1200];
                snprintf(rel, sizeof rel, "images/%s/%02d.png", name, written);
                snprintf(path, sizeof path, "%s/%s", opt->out_dir, rel);
                if (!stbi_write_png(path, opt->size, opt->size, 1, pix, opt->size)) {
                    st = fcl_fail(FEWCL_ERR_IO, "demo: cannot write %s", path);
                    break;
                }
                cJSON_AddItemToArray(cJSON_GetObjectItem(L, "image_names"),
                                     cJSON_CreateString(rel));
                cJSON_AddItemToArray(cJSON_GetObjectItem(L, "image_labels"),
                                     cJSON_CreateNumber(label));
                written++;
            }
            if (written < opt->images_per_class) continue; /* blank glyphs: not a class */
            cJSON_AddItemToArray(cJSON_GetObjectItem(L, "label_names"), cJSON_CreateString(name));
            summary->classes[S->split]++;
            summary->images += written;
        }
    }
    for (int s = 0; s < 3; s++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%s.json", opt->out_dir, split_names[s]);
        if (st == FEWCL_OK) st = write_json(path, lists[s]);
        cJSON_Delete(lists[s]);
    }
    if (st == FEWCL_OK) {
        char path[1100];
        snprintf(path, sizeof path, "%s/version", opt->out_dir);
        FILE *f = fopen(path, "w");
        int ok = f && fprintf(f, "%d\n", FCL_DEMO_DATA_VERSION) > 0;
        if (f && fclose(f) != 0) ok = 0;
        if (!ok) st = fcl_fail(FEWCL_ERR_IO, "demo: cannot write %s: %s", path, strerror(errno));
    }
    free(pix);
    for (int f = 0; f < n_faces; f++)
        free(faces[f].data);
    return st;
}
