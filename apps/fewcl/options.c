/* Option parsing conventions shared by every subcommand (see cli.h): our own messages for
 * unknown, ambiguous and incomplete options, with a suggestion and a pointer to --help instead
 * of the whole usage text; and help text for flags with their defaults. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_getopt(int argc, char **argv, const char *shorts, const struct option *opts) {
    opterr = 0; /* getopt's own messages name argv[0] (the subcommand) and lack the advice */
    char spec[64];
    snprintf(spec, sizeof spec, ":%s", shorts);
    return getopt_long(argc, argv, spec, opts, NULL);
}

/* Edit distance of two short strings (flag names), capped at 63 characters each. */
static int distance(const char *a, const char *b) {
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n > 63) n = 63;
    if (m > 63) m = 63;
    int row[64];
    for (int j = 0; j <= m; j++)
        row[j] = j;
    for (int i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= m; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best) best = row[j] + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

const char *cli_closest(const char *word, const char *const *names, int n) {
    const char *best = NULL;
    int best_d = 1 << 30, len = (int)strlen(word);
    int allowed = len >= 9 ? 3 : len >= 4 ? 2 : 1; /* a typo, not another word */
    for (int i = 0; i < n; i++) {
        int d = distance(word, names[i]);
        /* A flag that starts with what was typed is also a good guess (--val for --val-list). */
        if (!strncmp(names[i], word, (size_t)len) && len >= 3) d = 1;
        if (d < best_d) best_d = d, best = names[i];
    }
    return best_d <= allowed ? best : NULL;
}

static const char *closest_option(const char *word, const struct option *opts) {
    const char *names[256];
    int n = 0;
    for (int i = 0; opts[i].name && n < 256; i++)
        names[n++] = opts[i].name;
    return cli_closest(word, names, n);
}

int cli_bad_option(const char *cmd, int c, char **argv, const struct option *opts) {
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    char name[128];
    if (c == ':') {
        fprintf(stderr, "fewcl %s: %s needs a value\n", cmd, arg);
    } else if (c == '?' && optopt > 0 && optopt < 128 && strncmp(arg, "--", 2) != 0) {
        /* "-epochs" is read as -e -p ...: getopt stops at the first letter, inside the word
         * (argv[optind]) or at its end (argv[optind - 1]). Name the word and its long twin. */
        const char *word = NULL, *cur = argv[optind];
        if (cur && cur[0] == '-' && cur[1] && cur[1] != '-' && cur[2])
            word = cur;
        else if (arg[0] == '-' && arg[1] && arg[1] != '-' && arg[2])
            word = arg;
        const char *guess = word ? closest_option(word + 1, opts) : NULL;
        if (guess)
            fprintf(stderr, "fewcl %s: unknown option '%s'\ndid you mean --%s?\n", cmd, word,
                    guess);
        else
            fprintf(stderr, "fewcl %s: unknown option '-%c'\n", cmd, optopt);
    } else if (c == '?' && strncmp(arg, "--", 2) == 0) {
        snprintf(name, sizeof name, "%s", arg + 2);
        char *eq = strchr(name, '=');
        if (eq) *eq = 0;
        int matches = 0, exact = 0;
        for (int i = 0; opts[i].name; i++) {
            if (!strncmp(opts[i].name, name, strlen(name))) matches++;
            if (!strcmp(opts[i].name, name)) exact = 1;
        }
        if (exact && eq) {
            fprintf(stderr, "fewcl %s: --%s takes no value (given '%s')\n", cmd, name, arg);
        } else if (matches > 1) {
            fprintf(stderr, "fewcl %s: '--%s' is ambiguous; it could be", cmd, name);
            for (int i = 0, k = 0; opts[i].name; i++)
                if (!strncmp(opts[i].name, name, strlen(name)))
                    fprintf(stderr, "%s --%s", k++ ? "," : "", opts[i].name);
            fputc('\n', stderr);
        } else {
            fprintf(stderr, "fewcl %s: unknown option '--%s'\n", cmd, name);
            const char *guess = closest_option(name, opts);
            if (guess) fprintf(stderr, "did you mean --%s?\n", guess);
        }
    } else {
        fprintf(stderr, "fewcl %s: cannot parse the option '%s'\n", cmd, arg);
    }
    fprintf(stderr, "see `fewcl %s --help`\n", cmd);
    return EXIT_USAGE;
}

/* ---- help text with defaults --------------------------------------------------------------- */

void cli_help_flags(FILE *f, const char *heading, const cli_flag_help *items, int n) {
    enum { COLUMN = 24, WIDTH = 80 };
    fprintf(f, "\n%s\n", heading);
    for (int i = 0; i < n; i++) {
        int w = fprintf(f, "  %s", items[i].flag);
        if (w >= COLUMN) fprintf(f, "\n"), w = 0;
        w += fprintf(f, "%*s%s", COLUMN - w, "", items[i].what);
        if (items[i].dflt && *items[i].dflt) {
            /* The default on the same line when it fits, else under the description. */
            int len = (int)strlen(items[i].dflt) + 11;
            if (w + len > WIDTH) fprintf(f, "\n%*s", COLUMN - 1, ""), w = COLUMN;
            fprintf(f, " (default %s)", items[i].dflt);
        }
        fputc('\n', f);
    }
}
