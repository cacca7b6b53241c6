/* Episode loader (see loader.h). */
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "image.h"

/* ---- deterministic randomness ------------------------------------------------------------ */

static uint64_t mix(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r) { return mix(r->s++); }
static double runiform(rng *r) { return (double)(rnext(r) >> 11) * 0x1.0p-53; }
/* Uniform integer in [0, n). */
static int rbelow(rng *r, int n) { return (int)(runiform(r) * n); }

static rng stream(uint64_t seed, long episode, uint64_t purpose) {
    return (rng){mix(mix(seed) ^ mix((uint64_t)episode * 0x100000001b3ull + purpose))};
}

static void shuffle(int *a, int n, rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = rbelow(r, i + 1), t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

void fcl_episode_draw(const fcl_dataset *d, int n_way, int per_class, uint64_t seed, long episode,
                      int *classes, int *images) {
    rng r = stream(seed, episode, 0);
    int *perm = malloc((size_t)d->n_classes * sizeof *perm);
    for (int i = 0; i < d->n_classes; i++)
        perm[i] = i;
    shuffle(perm, d->n_classes, &r);
    for (int c = 0; c < n_way; c++) {
        classes[c] = perm[c];
        int count = d->class_count[perm[c]], *order = malloc((size_t)count * sizeof *order);
        for (int i = 0; i < count; i++)
            order[i] = d->class_start[perm[c]] + i;
        shuffle(order, count, &r);
        for (int i = 0; i < per_class && i < count; i++)
            images[c * per_class + i] = order[i];
        free(order);
    }
    free(perm);
}

/* ---- one image ------------------------------------------------------------------------- */

typedef struct fcl_loader {
    fcl_loader_options o;
    int per_class;
    size_t floats, image_floats;
    /* decoded-image cache: Resize(S) output per dataset image */
    fcl_image *cache;
    size_t cache_used;
    pthread_mutex_t cache_lock;
    /* prefetch ring */
    struct slot {
        long episode;
        int state; /* 0 free, 1 being built, 2 ready */
        float *x;
        int *classes;
        fewcl_status status;
        char error[1024];
    } * slots;
    pthread_t *threads;
    int n_threads;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    long next_assign, next_deliver;
    int stop;
    fcl_loader_stats stats;
} fcl_loader;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The Resize(S) image of dataset image `idx`, from the cache or decoded now. The caller owns
 * *out (a copy when it came from the cache). */
static fewcl_status resized_image(fcl_loader *l, int idx, fcl_image *out) {
    pthread_mutex_lock(&l->cache_lock);
    if (l->cache && l->cache[idx].rgb) {
        fcl_image *c = &l->cache[idx];
        fewcl_status s = fcl_image_crop(c, 0, 0, c->w, c->h, out); /* a private copy */
        l->stats.cache_hits++;
        pthread_mutex_unlock(&l->cache_lock);
        return s;
    }
    pthread_mutex_unlock(&l->cache_lock);
    double t0 = now_s();
    fcl_image raw;
    FCL_TRY(fcl_image_load(l->o.data->paths[idx], &raw));
    fewcl_status s = fcl_image_resize_shorter(&raw, l->o.image_size, out);
    fcl_image_free(&raw);
    FCL_TRY(s);
    pthread_mutex_lock(&l->cache_lock);
    l->stats.images_decoded++;
    l->stats.decode_seconds += now_s() - t0;
    size_t bytes = (size_t)out->w * out->h * 3;
    if (l->cache && !l->cache[idx].rgb && l->cache_used + bytes <= l->o.cache_bytes &&
        fcl_image_crop(out, 0, 0, out->w, out->h, &l->cache[idx]) == FEWCL_OK)
        l->cache_used += bytes;
    pthread_mutex_unlock(&l->cache_lock);
    return FEWCL_OK;
}

/* torchvision RandomResizedCrop's box: 10 tries of (area, log-aspect), else a centre crop. */
static void random_box(int W, int H, rng *r, int *x, int *y, int *w, int *h) {
    const double lo = log(3.0 / 4.0), hi = log(4.0 / 3.0);
    double area = (double)W * H;
    for (int t = 0; t < 10; t++) {
        double target = area * (0.08 + 0.92 * runiform(r));
        double aspect = exp(lo + (hi - lo) * runiform(r));
        int cw = (int)lround(sqrt(target * aspect)), ch = (int)lround(sqrt(target / aspect));
        if (cw > 0 && cw <= W && ch > 0 && ch <= H) {
            *y = rbelow(r, H - ch + 1);
            *x = rbelow(r, W - cw + 1);
            *w = cw, *h = ch;
            return;
        }
    }
    double ratio = (double)W / H;
    if (ratio < 3.0 / 4.0)
        *w = W, *h = (int)lround(W / (3.0 / 4.0));
    else if (ratio > 4.0 / 3.0)
        *h = H, *w = (int)lround(H * (4.0 / 3.0));
    else
        *w = W, *h = H;
    *y = (H - *h) / 2, *x = (W - *w) / 2;
}

static fewcl_status transform(fcl_loader *l, const fcl_image *img, rng *r, float *chw) {
    int S = l->o.image_size;
    fcl_image a = {0}, b = {0};
    fewcl_status s;
    if (l->o.augment) {
        int x, y, w, h;
        random_box(img->w, img->h, r, &x, &y, &w, &h);
        s = fcl_image_crop(img, x, y, w, h, &a);
        if (s == FEWCL_OK) s = fcl_image_resize(&a, S, S, &b);
        if (s == FEWCL_OK && runiform(r) < 0.5) fcl_image_flip(&b);
        if (s == FEWCL_OK) s = fcl_image_to_tensor(&b, S, chw);
    } else if (l->o.scale_115) {
        int T = (int)floor(1.15 * S);
        s = fcl_image_resize(img, T, T, &b);
        if (s == FEWCL_OK) s = fcl_image_to_tensor(&b, S, chw);
    } else {
        s = fcl_image_to_tensor(img, S, chw);
    }
    fcl_image_free(&a), fcl_image_free(&b);
    return s;
}

/* Builds episode e into x / classes. Runs on any thread; errors stay in this thread's message. */
static fewcl_status build(fcl_loader *l, long e, float *x, int *classes) {
    const fcl_dataset *d = l->o.data;
    int n = l->o.n_way, per = l->per_class;
    int *images = malloc((size_t)n * per * sizeof *images);
    if (!images) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "episode %ld", e);
    fcl_episode_draw(d, n, per, l->o.seed, e, classes, images);
    fewcl_status s = FEWCL_OK;
    for (int c = 0; c < n && s == FEWCL_OK; c++) {
        int *row = images + c * per, cls = classes[c], start = d->class_start[cls];
        for (int i = 0; i < per && s == FEWCL_OK; i++) {
            rng r = stream(l->o.seed, e, 1 + (uint64_t)(c * per + i));
            fcl_image img;
            s = resized_image(l, row[i], &img);
            /* --skip-bad-images: replace the image by the next one of the class in file order
             * that the episode does not use yet (deterministic, still distinct). */
            int base = row[i], step = 0, count = d->class_count[cls];
            while (s != FEWCL_OK && l->o.skip_bad) {
                fprintf(stderr, "fewcl: warning: skipping %s\n", fewcl_last_error());
                pthread_mutex_lock(&l->cache_lock);
                l->stats.skipped++;
                pthread_mutex_unlock(&l->cache_lock);
                int cand = -1;
                while (cand < 0 && ++step < count) {
                    int k = start + (base - start + step) % count, used = 0;
                    for (int j = 0; j < per; j++)
                        used |= row[j] == k;
                    if (!used) cand = k;
                }
                if (cand < 0) {
                    s = fcl_fail(FEWCL_ERR_FORMAT,
                                 "class '%s' of %s has too few readable "
                                 "images for an episode",
                                 d->class_names[cls], d->source);
                    break;
                }
                row[i] = cand;
                s = resized_image(l, cand, &img);
            }
            if (s != FEWCL_OK) break;
            double t0 = now_s();
            s = transform(l, &img, &r, x + (size_t)(c * per + i) * l->image_floats);
            fcl_image_free(&img);
            pthread_mutex_lock(&l->cache_lock);
            l->stats.transform_seconds += now_s() - t0;
            pthread_mutex_unlock(&l->cache_lock);
        }
    }
    free(images);
    return s;
}

/* The episode of delivery k (loader.h: blocks, or first + k). */
static long episode_of(const fcl_loader_options *o, long k) {
    if (o->block_len <= 0) return o->first_episode + k;
    return o->first_episode + k / o->block_len * o->block_period + k % o->block_len;
}

static void *worker(void *arg) {
    fcl_loader *l = arg;
    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!l->stop && l->next_assign >= l->next_deliver + l->o.prefetch)
            pthread_cond_wait(&l->changed, &l->lock);
        if (l->stop) break;
        long k = l->next_assign++;
        struct slot *s = &l->slots[k % l->o.prefetch];
        s->episode = k;
        s->state = 1;
        pthread_mutex_unlock(&l->lock);
        fewcl_status st = build(l, episode_of(&l->o, k), s->x, s->classes);
        pthread_mutex_lock(&l->lock);
        s->status = st;
        if (st != FEWCL_OK) snprintf(s->error, sizeof s->error, "%s", fewcl_last_error());
        s->state = 2;
        pthread_cond_broadcast(&l->changed);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

size_t fcl_loader_episode_floats(const fcl_loader *l) { return l->floats; }

fcl_loader_stats fcl_loader_stats_get(fcl_loader *l) {
    pthread_mutex_lock(&l->cache_lock); /* the workers update them under this lock */
    fcl_loader_stats st = l->stats;
    pthread_mutex_unlock(&l->cache_lock);
    return st;
}

void fcl_loader_destroy(fcl_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    for (int i = 0; i < l->n_threads; i++)
        pthread_join(l->threads[i], NULL);
    for (int i = 0; l->slots && i < l->o.prefetch; i++)
        free(l->slots[i].x), free(l->slots[i].classes);
    if (l->cache)
        for (int i = 0; i < l->o.data->n_images; i++)
            fcl_image_free(&l->cache[i]);
    free(l->cache), free(l->slots), free(l->threads);
    pthread_mutex_destroy(&l->lock);
    pthread_mutex_destroy(&l->cache_lock);
    pthread_cond_destroy(&l->changed);
    free(l);
}

fewcl_status fcl_loader_create(const fcl_loader_options *opt, fcl_loader **out) {
    *out = NULL;
    FCL_TRY(fcl_dataset_check_episode(opt->data, opt->n_way, opt->k_shot, opt->n_query));
    if (opt->image_size < 8 || opt->image_size > 4096)
        return fcl_fail(FEWCL_ERR_ARGUMENT, "image size %d (8 to 4096)", opt->image_size);
    if (opt->block_len < 0 || (opt->block_len > 0 && opt->block_period < opt->block_len))
        return fcl_fail(FEWCL_ERR_INTERNAL, "loader: blocks of %ld episodes every %ld",
                        opt->block_len, opt->block_period);
    fcl_loader *l = calloc(1, sizeof *l);
    if (!l) return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY, "loader");
    l->o = *opt;
    if (l->o.prefetch < 1) l->o.prefetch = 1;
    if (l->o.workers < 0) l->o.workers = 0;
    l->next_assign = l->next_deliver = 0; /* delivery ordinals (episode_of maps them) */
    l->per_class = opt->k_shot + opt->n_query;
    l->image_floats = (size_t)3 * opt->image_size * opt->image_size;
    l->floats = (size_t)opt->n_way * l->per_class * l->image_floats;
    pthread_mutex_init(&l->lock, NULL);
    pthread_mutex_init(&l->cache_lock, NULL);
    pthread_cond_init(&l->changed, NULL);
    int ok = 1;
    if (opt->cache_bytes)
        ok = (l->cache = calloc((size_t)opt->data->n_images, sizeof *l->cache)) != NULL;
    ok = ok && (l->slots = calloc((size_t)l->o.prefetch, sizeof *l->slots)) != NULL;
    for (int i = 0; ok && i < l->o.prefetch; i++) {
        l->slots[i].x = malloc(l->floats * sizeof(float));
        l->slots[i].classes = malloc((size_t)opt->n_way * sizeof(int));
        ok = l->slots[i].x && l->slots[i].classes;
    }
    if (ok && l->o.workers)
        ok = (l->threads = calloc((size_t)l->o.workers, sizeof *l->threads)) != NULL;
    for (int i = 0; ok && i < l->o.workers; i++, l->n_threads++)
        ok = pthread_create(&l->threads[i], NULL, worker, l) == 0;
    if (!ok) {
        fcl_loader_destroy(l);
        return fcl_fail(FEWCL_ERR_OUT_OF_MEMORY,
                        "loader: buffers or threads for %d prefetched "
                        "episodes",
                        opt->prefetch);
    }
    *out = l;
    return FEWCL_OK;
}

fewcl_status fcl_loader_next(fcl_loader *l, float *x, int *classes) {
    int tmp[256];
    int *cls = classes ? classes : (l->o.n_way <= 256 ? tmp : NULL);
    if (!cls) return fcl_fail(FEWCL_ERR_ARGUMENT, "loader: pass a classes array for n_way > 256");
    if (l->n_threads == 0) return build(l, episode_of(&l->o, l->next_deliver++), x, cls);
    pthread_mutex_lock(&l->lock);
    long k = l->next_deliver;
    struct slot *s = &l->slots[k % l->o.prefetch];
    while (!(s->state == 2 && s->episode == k))
        pthread_cond_wait(&l->changed, &l->lock);
    fewcl_status st = s->status;
    if (st == FEWCL_OK) {
        memcpy(x, s->x, l->floats * sizeof(float));
        memcpy(cls, s->classes, (size_t)l->o.n_way * sizeof(int));
    } else {
        fcl_fail(st, "%s", s->error); /* the worker's message, on this thread */
    }
    s->state = 0;
    l->next_deliver++;
    pthread_cond_broadcast(&l->changed);
    pthread_mutex_unlock(&l->lock);
    return st;
}
