/* sweep.c: `lathe sweep`. Compiles the model once into DIR, runs the trials of the sweep (sweep_plan) as
   child processes of that executable through posix_spawn, --jobs at a time, each with its --set flags, its
   own JSON log DIR/trial-K.jsonl and its output in DIR/trial-K.log, then ranks them by a metric of their
   logs' last lines and prints the table, also written as CSV. A failed trial is a row of the table; SIGINT
   or SIGTERM stops the running trials and ends the sweep with the table of what finished. */
#define _GNU_SOURCE /* pipe2, strsignal */
#include "sweep.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char sweep_usage[] =
    "usage: lathe sweep MODEL [--grid KEY=V1,V2,...]... [--random N KEY=DIST...]... [options] [-- FLAGS...]\n"
    "\n"
    "Compiles MODEL once and trains it once per trial with `--set KEY=VALUE` for each swept key; prints the\n"
    "trials best first by a metric of their JSON logs, and writes the table as CSV.\n"
    "\n"
    "  --grid KEY=V1,V2,...   a value list (model-language expressions, split at top-level commas); several\n"
    "                         --grid give their cross product. KEY as --set takes it: batch, optimizer,\n"
    "                         optimizer.lr, lr (= optimizer.lr), ...\n"
    "  --random N KEY=DIST... N trials (at each grid point) with KEY drawn from DIST: uniform(a, b),\n"
    "                         log(a, b) (log-uniform), int(a, b) (a..b), choice(v1, v2, ...)\n"
    "  --seed S               the seed of the random draws (default 0): the same seed, the same trials\n"
    "  --jobs N               trials run at once (default 1); each gets --threads cores/N unless FLAGS\n"
    "                         set --threads\n"
    "  --metric NAME          the ranking metric, a key of the JSON log (default test_accuracy, else\n"
    "                         val_loss, else train_loss)\n"
    "  --mode min|max         whether smaller or larger is better (default: min for a loss, mae, mse)\n"
    "  --out DIR              where the executable, trial-K.log and trial-K.jsonl go (default ./sweep-TIME)\n"
    "  --csv FILE             the table as CSV (default DIR/sweep.csv)\n"
    "  -- FLAGS...            passed to every trial: -- --data DIR --epochs 1 --limit 2000\n"
    "\n"
    "example:\n"
    "  lathe sweep models/fashion_mlp.lathe --grid lr=1e-3,1e-2 --grid batch=64,128 --jobs 2 \\\n"
    "      -- --data /usr/share/datasets/fashion-mnist --epochs 1\n"
    "\n"
    "exit status: 0 some trial succeeded, 1 none did (or MODEL has errors), 2 bad usage\n";

/* ---------------------------------------------------------------- memory and messages */
static void *xalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fputs("lathe sweep: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static void *xgrow(void *p, size_t n) {
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("lathe sweep: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xprintf(const char *fmt, ...) {
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = xalloc((size_t)(n < 0 ? 0 : n) + 1);
    if (n > 0)
        vsnprintf(s, (size_t)n + 1, fmt, aq);
    va_end(aq);
    return s;
}

static bool fail(Sweep *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return false;
}

void sweep_init(Sweep *s) {
    memset(s, 0, sizeof *s);
    s->jobs = 1;
    s->maximize = -1;
}

static void free_list(char **items, int n) {
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

void sweep_free(Sweep *s) {
    for (int i = 0; i < s->naxes; i++) {
        free(s->axes[i].key);
        free_list(s->axes[i].values, s->axes[i].nvalues);
    }
    free(s->axes);
    for (int i = 0; i < s->ntrials; i++) {
        free_list(s->trials[i].values, s->naxes);
        free(s->trials[i].why);
        free(s->trials[i].last_json);
    }
    free(s->trials);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- values */
static char *trimmed(const char *p, const char *end) {
    while (p < end && isspace((unsigned char)*p))
        p++;
    while (end > p && isspace((unsigned char)end[-1]))
        end--;
    return xprintf("%.*s", (int)(end - p), p);
}

bool sweep_split(const char *text, char ***items, int *nitems, char *err, size_t errlen) {
    char **out = NULL;
    int n = 0, depth = 0;
    char quote = 0, stack[64];
    const char *start = text;
    for (const char *p = text;; p++) {
        const char c = *p;
        if (quote && c) {
            if (c == '\\' && p[1])
                p++;
            else if (c == quote)
                quote = 0;
            continue;
        }
        if (!c || (c == ',' && depth == 0)) {
            const char *why = !c && quote ? "a quote is not closed"
                              : !c && depth ? "a bracket is not closed"
                                            : NULL;
            char *item = why ? NULL : trimmed(start, p);
            if (item && !*item)
                why = "an empty value";
            if (why) {
                snprintf(err, errlen, "%s in '%s'", why, text);
                free(item);
                free_list(out, n);
                return false;
            }
            out = xgrow(out, sizeof *out * (size_t)(n + 1));
            out[n++] = item;
            if (!c)
                break;
            start = p + 1;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '(' || c == '[' || c == '{') {
            if (depth == (int)sizeof stack) {
                snprintf(err, errlen, "brackets nest too deep in '%s'", text);
                free_list(out, n);
                return false;
            }
            stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0 || stack[depth - 1] != c) {
                snprintf(err, errlen, "an unmatched '%c' in '%s'", c, text);
                free_list(out, n);
                return false;
            }
            depth--;
        }
    }
    *items = out;
    *nitems = n;
    return true;
}

/* A key as --set takes it: NAME or NAME.ARG. */
static bool is_key(const char *k, size_t len) {
    size_t i = 0;
    for (int part = 0; part < 2; part++) {
        if (i >= len || !(isalpha((unsigned char)k[i]) || k[i] == '_'))
            return false;
        while (i < len && (isalnum((unsigned char)k[i]) || k[i] == '_'))
            i++;
        if (i == len)
            return true;
        if (k[i++] != '.')
            return false;
    }
    return false;
}

static bool parse_number(const char *text, double *out) {
    char *end;
    errno = 0;
    *out = strtod(text, &end);
    return *text && !*end && errno != ERANGE && isfinite(*out);
}

/* The KEY of KEY=... as a new axis of s (*ax); *rest is what follows '='. */
static bool new_axis(Sweep *s, const char *flag, const char *arg, const char *form, SweepAxis **ax,
                     const char **rest) {
    const char *eq = strchr(arg, '=');
    if (!eq)
        return fail(s, "%s takes %s, not '%s'", flag, form, arg);
    size_t n = (size_t)(eq - arg);
    if (!is_key(arg, n))
        return fail(s, "%s %s: '%.*s' is not a key as --set takes it (NAME or NAME.ARG)", flag, arg, (int)n, arg);
    for (int i = 0; i < s->naxes; i++)
        if (strlen(s->axes[i].key) == n && !strncmp(s->axes[i].key, arg, n))
            return fail(s, "%s %s: %s is swept twice", flag, arg, s->axes[i].key);
    s->axes = xgrow(s->axes, sizeof *s->axes * (size_t)(s->naxes + 1));
    *ax = &s->axes[s->naxes++];
    memset(*ax, 0, sizeof **ax);
    (*ax)->key = xprintf("%.*s", (int)n, arg);
    *rest = eq + 1;
    return true;
}

static bool parse_grid(Sweep *s, const char *arg) {
    const char *rest;
    SweepAxis *ax;
    char msg[400];
    if (!new_axis(s, "--grid", arg, "KEY=V1,V2,...", &ax, &rest))
        return false;
    ax->dist = SWEEP_GRID;
    if (!sweep_split(rest, &ax->values, &ax->nvalues, msg, sizeof msg))
        return fail(s, "--grid %s: %s", arg, msg);
    return true;
}

static const char dist_forms[] = "uniform(a, b), log(a, b), int(a, b) or choice(v1, v2, ...)";

static bool parse_dist(Sweep *s, const char *arg) {
    const char *rest;
    SweepAxis *ax;
    if (!new_axis(s, "--random", arg, "KEY=DIST", &ax, &rest))
        return false;
    static const struct { const char *name; SweepDist dist; } dists[] = {
        {"uniform", SWEEP_UNIFORM}, {"log", SWEEP_LOG}, {"int", SWEEP_INT}, {"choice", SWEEP_CHOICE}};
    const char *open = strchr(rest, '('), *close = rest + strlen(rest);
    while (close > rest && isspace((unsigned char)close[-1]))
        close--;
    int k = -1;
    char *name = open ? trimmed(rest, open) : NULL;
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, dists[i].name))
            k = i;
    free(name);
    if (k < 0 || close[-1] != ')')
        return fail(s, "--random %s: expected %s", arg, dist_forms);
    ax->dist = dists[k].dist;
    char *inside = xprintf("%.*s", (int)(close - 1 - open - 1), open + 1), msg[400];
    bool ok = sweep_split(inside, &ax->values, &ax->nvalues, msg, sizeof msg);
    free(inside);
    if (!ok)
        return fail(s, "--random %s: %s", arg, msg);
    if (ax->dist == SWEEP_CHOICE)
        return true;
    if (ax->nvalues != 2 || !parse_number(ax->values[0], &ax->lo) || !parse_number(ax->values[1], &ax->hi))
        return fail(s, "--random %s: %s takes two numbers, %s(a, b)", arg, dists[k].name, dists[k].name);
    if (ax->dist == SWEEP_INT && (ax->lo != floor(ax->lo) || ax->hi != floor(ax->hi) || fabs(ax->lo) > 9e15 ||
                                  fabs(ax->hi) > 9e15))
        return fail(s, "--random %s: int takes two whole numbers", arg);
    if (ax->dist == SWEEP_INT ? ax->lo > ax->hi : ax->lo >= ax->hi)
        return fail(s, "--random %s: a must be below b", arg);
    if (ax->dist == SWEEP_LOG && ax->lo <= 0)
        return fail(s, "--random %s: log takes two positive numbers", arg);
    return true;
}

/* ---------------------------------------------------------------- the command line */
static bool parse_count(Sweep *s, const char *flag, const char *v, long long min, long long max, long long *out) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max)
        return fail(s, "%s takes a whole number from %lld to %lld, not '%s'", flag, min, max, v);
    *out = n;
    return true;
}

bool sweep_parse_args(Sweep *s, int argc, char **argv) {
    enum { F_GRID, F_RANDOM, F_SEED, F_JOBS, F_METRIC, F_MODE, F_CSV, F_OUT, NFLAGS };
    static const char *const flags[NFLAGS] = {"--grid", "--random", "--seed", "--jobs",
                                              "--metric", "--mode", "--csv", "--out"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            s->pass = argv + i + 1;
            s->npass = argc - i - 1;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            s->help = true;
            return true;
        }
        if (a[0] != '-' || !a[1]) {
            if (s->model)
                return fail(s, "unexpected argument '%s' (one MODEL; the trials' flags go after --)", a);
            s->model = a;
            continue;
        }
        char flag[32];
        const char *eq = strchr(a, '='), *v = NULL;
        snprintf(flag, sizeof flag, "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        int f = -1;
        for (int k = 0; k < NFLAGS; k++)
            if (!strcmp(flag, flags[k]))
                f = k;
        if (f < 0)
            return fail(s, "unknown option '%s' (the trials' own flags go after --)", a);
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else
            return fail(s, "%s needs a value", flag);
        long long n = 0;
        switch (f) {
        case F_GRID:
            if (!parse_grid(s, v))
                return false;
            break;
        case F_RANDOM: {
            if (!parse_count(s, "--random", v, 1, SWEEP_MAX_TRIALS, &n))
                return false;
            if (s->nrandom && s->nrandom != n)
                return fail(s, "--random %lld after --random %d: every --random takes the same number of trials",
                            n, s->nrandom);
            s->nrandom = (int)n;
            int before = s->naxes;
            /* KEY=DIST arguments up to the next option */
            while (i + 1 < argc && argv[i + 1][0] != '-' && strchr(argv[i + 1], '='))
                if (!parse_dist(s, argv[++i]))
                    return false;
            if (s->naxes == before)
                return fail(s, "--random %lld needs KEY=DIST after it (DIST: %s)", n, dist_forms);
            break;
        }
        case F_SEED: {
            char *end;
            errno = 0;
            unsigned long long seed = strtoull(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || errno)
                return fail(s, "--seed takes a whole number of at least 0, not '%s'", v);
            s->seed = seed;
            break;
        }
        case F_JOBS:
            if (!parse_count(s, "--jobs", v, 1, 256, &n))
                return false;
            s->jobs = (int)n;
            break;
        case F_METRIC:
            if (!is_key(v, strlen(v)) || strchr(v, '.'))
                return fail(s, "--metric takes a key of the JSON log (test_accuracy, val_loss, ...), not '%s'", v);
            s->metric = v;
            break;
        case F_MODE:
            if (strcmp(v, "min") && strcmp(v, "max"))
                return fail(s, "--mode takes min or max, not '%s'", v);
            s->maximize = !strcmp(v, "max");
            break;
        case F_CSV: s->csv = v; break;
        case F_OUT: s->out = v; break;
        }
    }
    if (!s->model)
        return fail(s, "sweep needs a model file: lathe sweep MODEL --grid KEY=V1,V2,...");
    if (s->naxes == 0)
        return fail(s, "nothing to sweep: give --grid KEY=V1,V2,... or --random N KEY=DIST");
    for (int i = 0; i < s->npass; i++)
        if (!strcmp(s->pass[i], "--log-json") || !strncmp(s->pass[i], "--log-json=", 11))
            return fail(s, "--log-json after --: each trial writes its own log, DIR/trial-K.jsonl");
    return true;
}

/* ---------------------------------------------------------------- the trials */
uint64_t sweep_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) from the top 53 bits */
static double unit(uint64_t *rng) { return (double)(sweep_rng_next(rng) >> 11) * 0x1.0p-53; }

static void real_text(double v, char *buf, size_t n) {
    snprintf(buf, n, "%.4g", v);
    if (!strpbrk(buf, ".e") && strlen(buf) + 2 < n)
        strcat(buf, ".0"); /* 2.0 stays a real: "2" would be an integer */
}

void sweep_draw(const SweepAxis *ax, uint64_t *rng, char *buf, size_t n) {
    double u = unit(rng);
    switch (ax->dist) {
    case SWEEP_UNIFORM: real_text(fmin(ax->lo + (ax->hi - ax->lo) * u, ax->hi), buf, n); break;
    case SWEEP_LOG: real_text(fmin(exp(log(ax->lo) + (log(ax->hi) - log(ax->lo)) * u), ax->hi), buf, n); break;
    case SWEEP_INT:
        snprintf(buf, n, "%lld", (long long)fmin(ax->lo + floor(u * (ax->hi - ax->lo + 1)), ax->hi));
        break;
    case SWEEP_CHOICE: snprintf(buf, n, "%s", ax->values[(int)fmin(floor(u * ax->nvalues), ax->nvalues - 1)]); break;
    case SWEEP_GRID: snprintf(buf, n, "%s", ax->values[0]); break;
    }
}

bool sweep_plan(Sweep *s) {
    long long points = 1;
    for (int i = 0; i < s->naxes; i++)
        if (s->axes[i].dist == SWEEP_GRID && (points *= s->axes[i].nvalues) > SWEEP_MAX_TRIALS)
            break;
    long long total = points * (s->nrandom ? s->nrandom : 1);
    if (total > SWEEP_MAX_TRIALS)
        return fail(s, "the sweep has %s%lld trials; at most %d", points > SWEEP_MAX_TRIALS ? "over " : "", total,
                    SWEEP_MAX_TRIALS);
    s->ntrials = (int)total;
    s->trials = xalloc(sizeof *s->trials * (size_t)total);
    uint64_t rng = s->seed;
    char buf[1024];
    for (int t = 0; t < s->ntrials; t++) {
        SweepTrial *tr = &s->trials[t];
        tr->id = t + 1;
        tr->metric = tr->train_loss = tr->seconds = NAN;
        tr->values = xalloc(sizeof *tr->values * (size_t)s->naxes);
        int point = t / (s->nrandom ? s->nrandom : 1);
        /* the grid point's digits, the last grid axis the fastest */
        for (int i = s->naxes - 1; i >= 0; i--) {
            if (s->axes[i].dist != SWEEP_GRID)
                continue;
            tr->values[i] = xprintf("%s", s->axes[i].values[point % s->axes[i].nvalues]);
            point /= s->axes[i].nvalues;
        }
        for (int i = 0; i < s->naxes; i++) {
            if (s->axes[i].dist == SWEEP_GRID)
                continue;
            sweep_draw(&s->axes[i], &rng, buf, sizeof buf);
            tr->values[i] = xprintf("%s", buf);
        }
    }
    return true;
}

/* ---------------------------------------------------------------- scores and ranking */
bool sweep_maximizes(const char *metric) {
    const char *name = metric;
    static const char *const passes[] = {"train_", "val_", "test_"};
    for (int i = 0; i < 3; i++)
        if (!strncmp(metric, passes[i], strlen(passes[i])))
            name = metric + strlen(passes[i]);
    return strcmp(name, "loss") && strcmp(name, "mae") && strcmp(name, "mse") && strcmp(name, "seconds");
}

/* The number at key of a log line: NAN for null (the log's way of writing a value that is not finite). */
static bool log_number(const json_t *line, const char *key, double *out) {
    const json_t *v = json_object_get(line, key);
    if (!v || !(json_is_number(v) || json_is_null(v)))
        return false;
    *out = json_is_null(v) ? NAN : json_number_value(v);
    return true;
}

void sweep_score(Sweep *s) {
    static const char *const defaults[] = {"test_accuracy", "val_loss", "train_loss"};
    json_t **lines = xalloc(sizeof *lines * (size_t)(s->ntrials + 1));
    for (int t = 0; t < s->ntrials; t++)
        if (s->trials[t].state == SWEEP_OK)
            lines[t] = json_loads(s->trials[t].last_json, 0, NULL);
    for (int t = 0; !s->metric && t < s->ntrials; t++)
        for (int k = 0; lines[t] && !s->metric && k < 3; k++)
            if (json_object_get(lines[t], defaults[k]))
                s->metric = defaults[k];
    if (!s->metric)
        s->metric = "train_loss";
    if (s->maximize < 0)
        s->maximize = sweep_maximizes(s->metric);
    for (int t = 0; t < s->ntrials; t++) {
        SweepTrial *tr = &s->trials[t];
        if (tr->state != SWEEP_OK)
            continue;
        if (!lines[t] || !log_number(lines[t], s->metric, &tr->metric)) {
            tr->state = SWEEP_FAILED;
            tr->why = xprintf("trial-%d.jsonl has no number %s", tr->id, s->metric);
        }
        if (lines[t])
            log_number(lines[t], "train_loss", &tr->train_loss);
        json_decref(lines[t]);
    }
    free(lines);
}

static int rank_class(const SweepTrial *t) {
    switch (t->state) {
    case SWEEP_OK: return isnan(t->metric) ? 1 : 0;
    case SWEEP_FAILED: return 2;
    case SWEEP_STOPPED: return 3;
    default: return 4;
    }
}

/* qsort has no context argument: the mode travels in the trials' sort key */
static int trial_cmp(const void *a, const void *b) {
    const SweepTrial *x = a, *y = b;
    int cx = rank_class(x), cy = rank_class(y);
    if (cx != cy)
        return cx - cy;
    if (cx == 0 && x->metric != y->metric)
        return x->metric < y->metric ? -1 : 1;
    return x->id - y->id;
}

void sweep_rank(Sweep *s) {
    /* sort ascending on a key that is the metric negated where larger is better */
    for (int t = 0; t < s->ntrials && s->maximize > 0; t++)
        s->trials[t].metric = -s->trials[t].metric;
    qsort(s->trials, (size_t)s->ntrials, sizeof *s->trials, trial_cmp);
    for (int t = 0; t < s->ntrials && s->maximize > 0; t++)
        s->trials[t].metric = -s->trials[t].metric;
}

/* ---------------------------------------------------------------- the table */
enum { COL_RANK, COL_TRIAL, COL_VALUE, COL_METRIC, COL_TRAIN_LOSS, COL_SECONDS, COL_STATUS };

/* The table's columns, malloc'd: rank, trial, one per axis (COL_VALUE + 16 * axis), the metric, then
   train_loss and seconds unless the metric is one of them, then status. */
static int *columns(const Sweep *s, int *ncols) {
    int n = 0, *cols = xalloc(sizeof *cols * (size_t)(s->naxes + 6));
    cols[n++] = COL_RANK;
    cols[n++] = COL_TRIAL;
    for (int i = 0; i < s->naxes; i++)
        cols[n++] = COL_VALUE + 16 * i;
    cols[n++] = COL_METRIC;
    if (strcmp(s->metric, "train_loss"))
        cols[n++] = COL_TRAIN_LOSS;
    if (strcmp(s->metric, "seconds"))
        cols[n++] = COL_SECONDS;
    cols[n++] = COL_STATUS;
    *ncols = n;
    return cols;
}

static const char *header(const Sweep *s, int col) {
    switch (col % 16) {
    case COL_RANK: return "rank";
    case COL_TRIAL: return "trial";
    case COL_VALUE: return s->axes[col / 16].key;
    case COL_METRIC: return s->metric;
    case COL_TRAIN_LOSS: return "train_loss";
    case COL_SECONDS: return "seconds";
    default: return "status";
    }
}

static void number_text(double v, bool present, const char *fmt, char *buf, size_t n) {
    if (!present)
        snprintf(buf, n, "%s", "");
    else if (isnan(v))
        snprintf(buf, n, "nan");
    else
        snprintf(buf, n, fmt, v);
}

/* The text of row r's cell (rank is r + 1 for an ok trial with a metric); exact: the CSV's precision. */
static const char *cell(const Sweep *s, int r, int col, bool exact, char *buf, size_t n) {
    const SweepTrial *t = &s->trials[r];
    bool ok = t->state == SWEEP_OK;
    switch (col % 16) {
    case COL_RANK:
        if (rank_class(t) == 0)
            snprintf(buf, n, "%d", r + 1);
        else
            snprintf(buf, n, "%s", exact ? "" : "-");
        return buf;
    case COL_TRIAL: snprintf(buf, n, "%d", t->id); return buf;
    case COL_VALUE: return t->values[col / 16];
    case COL_METRIC: number_text(t->metric, ok, exact ? "%.10g" : "%.5g", buf, n); return buf;
    case COL_TRAIN_LOSS: number_text(t->train_loss, ok, exact ? "%.10g" : "%.5g", buf, n); return buf;
    case COL_SECONDS: number_text(t->seconds, !isnan(t->seconds), exact ? "%.3f" : "%.2f", buf, n); return buf;
    default:
        switch (t->state) {
        case SWEEP_OK: return "ok";
        case SWEEP_FAILED: snprintf(buf, n, "failed: %s", t->why ? t->why : "?"); return buf;
        case SWEEP_STOPPED: return "stopped";
        default: return "not run";
        }
    }
}

void sweep_print_table(FILE *f, const Sweep *s) {
    int ncols, *cols = columns(s, &ncols);
    int *width = xalloc(sizeof *width * (size_t)ncols);
    char buf[1024];
    for (int c = 0; c < ncols; c++) {
        width[c] = (int)strlen(header(s, cols[c]));
        for (int r = 0; r < s->ntrials; r++) {
            int w = (int)strlen(cell(s, r, cols[c], false, buf, sizeof buf));
            width[c] = w > width[c] ? w : width[c];
        }
    }
    for (int r = -1; r < s->ntrials; r++) {
        for (int c = 0; c < ncols; c++) {
            const char *text = r < 0 ? header(s, cols[c]) : cell(s, r, cols[c], false, buf, sizeof buf);
            if (c == ncols - 1)
                fprintf(f, "%s\n", text);
            else
                fprintf(f, "%-*s  ", width[c], text);
        }
    }
    free(width);
    free(cols);
}

static void csv_field(FILE *f, const char *text, bool last) {
    if (strpbrk(text, ",\"\r\n") || (*text && (isspace((unsigned char)text[0]) ||
                                               isspace((unsigned char)text[strlen(text) - 1])))) {
        fputc('"', f);
        for (const char *p = text; *p; p++) {
            if (*p == '"')
                fputc('"', f);
            fputc(*p, f);
        }
        fputc('"', f);
    } else {
        fputs(text, f);
    }
    fputs(last ? "\r\n" : ",", f);
}

bool sweep_write_csv(FILE *f, const Sweep *s) {
    int ncols, *cols = columns(s, &ncols);
    char buf[1024];
    for (int r = -1; r < s->ntrials; r++)
        for (int c = 0; c < ncols; c++)
            csv_field(f, r < 0 ? header(s, cols[c]) : cell(s, r, cols[c], true, buf, sizeof buf), c == ncols - 1);
    free(cols);
    return fflush(f) == 0 && !ferror(f);
}

/* ---------------------------------------------------------------- running the trials */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

/* A running trial: its process, the pipe of its stderr (copied into its log), the last line seen there. */
typedef struct Job {
    SweepTrial *trial;
    pid_t pid;
    int err_fd, log_fd;
    double started;
    char line[512], last[512];
    size_t len;
} Job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool shell_plain(const char *a) {
    if (!*a)
        return false;
    for (const char *p = a; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_./=:,+@%", *p))
            return false;
    return true;
}

/* The trial's command as a shell would take it, on the first line of its log: "# EXE train ...". */
static void write_command(int fd, char *const *argv) {
    size_t len = 0;
    for (int i = 0; argv[i]; i++)
        len += 4 * strlen(argv[i]) + 3;
    char *text = xalloc(len + 3), *o = text;
    *o++ = '#';
    for (int i = 0; argv[i]; i++) {
        *o++ = ' ';
        bool plain = shell_plain(argv[i]);
        if (!plain)
            *o++ = '\'';
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'')
                o = stpcpy(o, "'\\''"); /* close, an escaped quote, reopen */
            else
                *o++ = *p;
        }
        if (!plain)
            *o++ = '\'';
    }
    *o++ = '\n';
    /* a log that cannot be written shows as the trial's own failure to write its output */
    if (write(fd, text, (size_t)(o - text)) < 0)
        errno = 0;
    free(text);
}

/* Copies what the trial has written to stderr into its log, keeping the last non-empty line. */
static void relay_stderr(Job *j) {
    char buf[4096];
    for (;;) {
        ssize_t n = read(j->err_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) { /* the trial has closed its stderr: poll no more */
            close(j->err_fd);
            j->err_fd = -1;
        }
        if (n <= 0)
            return;
        if (write(j->log_fd, buf, (size_t)n) < 0) /* as in write_command */
            errno = 0;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n' || buf[i] == '\r') {
                if (j->len) {
                    memcpy(j->last, j->line, j->len);
                    j->last[j->len] = 0;
                    j->len = 0;
                }
            } else if (j->len + 1 < sizeof j->line) {
                j->line[j->len++] = buf[i];
            }
        }
    }
}

static bool start_trial(const Sweep *s, const char *exe, int threads, SweepTrial *t, Job *j) {
    char *log = xprintf("%s/trial-%d.log", s->out, t->id), *json = xprintf("%s/trial-%d.jsonl", s->out, t->id);
    char threads_text[16];
    int argc = 0;
    char **argv = xalloc(sizeof *argv * (size_t)(s->npass + 2 * s->naxes + 8));
    char **sets = xalloc(sizeof *sets * (size_t)s->naxes);
    argv[argc++] = (char *)exe;
    argv[argc++] = "train";
    /* the swept --set flags after the user's, so that they win over a --set of the same key there */
    for (int i = s->npass && !strcmp(s->pass[0], "train"); i < s->npass; i++)
        argv[argc++] = s->pass[i];
    for (int i = 0; i < s->naxes; i++) {
        argv[argc++] = "--set";
        argv[argc++] = sets[i] = xprintf("%s=%s", s->axes[i].key, t->values[i]);
    }
    argv[argc++] = "--log-json";
    argv[argc++] = json;
    if (threads > 0) {
        snprintf(threads_text, sizeof threads_text, "%d", threads);
        argv[argc++] = "--threads";
        argv[argc++] = threads_text;
    }
    memset(j, 0, sizeof *j);
    j->trial = t;
    j->pid = -1;
    j->err_fd = j->log_fd = -1;
    int fds[2] = {-1, -1}, rc = 0;
    const char *what = log;
    if (unlink(json) != 0 && errno != ENOENT) {
        rc = errno;
        what = json;
    } else if ((j->log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644)) < 0) {
        rc = errno;
    } else if (pipe2(fds, O_CLOEXEC) != 0) {
        rc = errno;
        what = "a pipe";
    }
    if (!rc) {
        write_command(j->log_fd, argv);
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, dflt;
        sigemptyset(&none);
        sigemptyset(&dflt);
        sigaddset(&dflt, SIGINT);
        sigaddset(&dflt, SIGTERM);
        sigaddset(&dflt, SIGPIPE);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, j->log_fd, 1);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &dflt);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        j->started = now();
        rc = posix_spawn(&j->pid, exe, &fa, &attr, argv, environ);
        what = exe;
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        close(fds[1]);
        j->err_fd = fds[0];
        if (rc)
            close(fds[0]);
        else
            fcntl(j->err_fd, F_SETFL, O_NONBLOCK);
    }
    if (rc) {
        t->state = SWEEP_FAILED;
        t->why = xprintf("cannot %s %s: %s", what == exe ? "run" : "create", what, strerror(rc));
        if (j->log_fd >= 0)
            close(j->log_fd);
    }
    free_list(sets, s->naxes);
    free(argv);
    free(log);
    free(json);
    return rc == 0;
}

/* The last non-empty line of a file, malloc'd; NULL when there is none. */
static char *last_line(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *line = NULL, *last = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        while (n > 0 && isspace((unsigned char)line[n - 1]))
            line[--n] = 0;
        if (n > 0) {
            free(last);
            last = xprintf("%s", line);
        }
    }
    free(line);
    fclose(f);
    return last;
}

/* The trial's process has ended with wait status `status`: its state and why, from the status and its log. */
static void finish_trial(const Sweep *s, Job *j, int status) {
    SweepTrial *t = j->trial;
    relay_stderr(j);
    if (j->len) {
        memcpy(j->last, j->line, j->len);
        j->last[j->len] = 0;
    }
    if (j->err_fd >= 0)
        close(j->err_fd);
    close(j->log_fd);
    t->seconds = now() - j->started;
    const char *sep = j->last[0] ? ": " : "";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        char *json = xprintf("%s/trial-%d.jsonl", s->out, t->id);
        t->last_json = last_line(json);
        json_t *line = t->last_json ? json_loads(t->last_json, 0, NULL) : NULL;
        t->state = json_is_object(line) ? SWEEP_OK : SWEEP_FAILED;
        if (!line)
            t->why = xprintf("exit 0 but %s has no JSON line", json);
        else if (!json_is_object(line))
            t->why = xprintf("exit 0 but the last line of %s is not a JSON object", json);
        json_decref(line);
        free(json);
    } else if (WIFEXITED(status)) {
        /* a trial's train catches the SIGTERM that the sweep stops it with, saves its checkpoint, exits 143 */
        bool caught = stop_signal && WEXITSTATUS(status) == 128 + SIGTERM;
        t->state = caught ? SWEEP_STOPPED : SWEEP_FAILED;
        t->why = xprintf("exit %d%s%s", WEXITSTATUS(status), sep, j->last);
    } else {
        t->state = stop_signal ? SWEEP_STOPPED : SWEEP_FAILED;
        t->why = xprintf("signal %d (%s)%s%s", WTERMSIG(status), strsignal(WTERMSIG(status)), sep, j->last);
    }
}

static void report_trial(const Sweep *s, const SweepTrial *t, int done) {
    fprintf(stderr, "[%d/%d] trial %d", done, s->ntrials, t->id);
    for (int i = 0; i < s->naxes; i++)
        fprintf(stderr, " %s=%s", s->axes[i].key, t->values[i]);
    if (t->state == SWEEP_OK)
        fprintf(stderr, ": ok (%.1f s)\n", t->seconds);
    else
        fprintf(stderr, ": %s: %s\n", t->state == SWEEP_STOPPED ? "stopped" : "failed", t->why);
}

/* Waits for the jobs that are running, relaying their stderr; each one that ends is finished and taken
   out of jobs[]. Returns how many ended. */
static int reap(const Sweep *s, Job *jobs, int *njobs, int timeout_ms, int *done) {
    struct pollfd pfd[256];
    for (int k = 0; k < *njobs; k++)
        pfd[k] = (struct pollfd){.fd = jobs[k].err_fd, .events = POLLIN};
    if (poll(pfd, (nfds_t)*njobs, timeout_ms) > 0)
        for (int k = 0; k < *njobs; k++)
            if (pfd[k].revents)
                relay_stderr(&jobs[k]);
    int ended = 0;
    for (int k = 0; k < *njobs;) {
        int status;
        pid_t r = waitpid(jobs[k].pid, &status, WNOHANG);
        if (r == 0 || (r < 0 && errno == EINTR)) {
            k++;
            continue;
        }
        if (r < 0) /* cannot happen for our own child; count it as lost */
            status = 0x7f00 | SIGKILL;
        finish_trial(s, &jobs[k], status);
        report_trial(s, jobs[k].trial, ++*done);
        jobs[k] = jobs[--*njobs];
        ended++;
    }
    return ended;
}

/* Runs the trials --jobs at a time; stops them all on SIGINT or SIGTERM (then stop_signal is set). */
static void run_trials(Sweep *s, const char *exe) {
    Job jobs[256];
    int njobs = 0, next = 0, done = 0, threads = 0;
    bool own_threads = false;
    for (int i = 0; i < s->npass; i++)
        own_threads |= !strcmp(s->pass[i], "--threads") || !strncmp(s->pass[i], "--threads=", 10);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (s->jobs > 1 && !own_threads) /* the trials share the cores rather than each taking them all */
        threads = cores > s->jobs ? (int)(cores / s->jobs) : 1;
    struct sigaction sa = {.sa_handler = on_stop}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    while (!stop_signal && (next < s->ntrials || njobs > 0)) {
        while (!stop_signal && njobs < s->jobs && next < s->ntrials) {
            SweepTrial *t = &s->trials[next++];
            if (start_trial(s, exe, threads, t, &jobs[njobs]))
                njobs++;
            else
                report_trial(s, t, ++done);
        }
        if (njobs > 0)
            reap(s, jobs, &njobs, 100, &done);
    }
    if (stop_signal) {
        for (int k = 0; k < njobs; k++)
            kill(jobs[k].pid, SIGTERM);
        /* a few seconds to end on their own, then SIGKILL */
        for (double until = now() + 5; njobs > 0 && now() < until;)
            reap(s, jobs, &njobs, 50, &done);
        for (int k = 0; k < njobs; k++)
            kill(jobs[k].pid, SIGKILL);
        while (njobs > 0)
            reap(s, jobs, &njobs, 50, &done);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
}

/* ---------------------------------------------------------------- the command */
static bool make_dir(const char *path) {
    char *p = xprintf("%s", path);
    bool ok = true;
    for (char *q = p + 1; ok; q++) {
        if (*q && *q != '/')
            continue;
        char c = *q;
        *q = 0;
        struct stat st;
        if (mkdir(p, 0755) != 0 && !(errno == EEXIST && stat(p, &st) == 0 && S_ISDIR(st.st_mode)))
            ok = false;
        *q = c;
        if (!c)
            break;
    }
    free(p);
    return ok;
}

/* --out DIR, or a fresh ./sweep-YYYYmmdd-HHMMSS[-K]; *created when this sweep made it. */
static char *out_dir(const Sweep *s, bool *created) {
    *created = false;
    if (s->out) {
        struct stat st;
        bool existed = stat(s->out, &st) == 0;
        if (!make_dir(s->out)) {
            fprintf(stderr, "lathe sweep: cannot create the folder %s: %s\n", s->out, strerror(errno));
            return NULL;
        }
        *created = !existed;
        return xprintf("%s", s->out);
    }
    char stamp[32];
    time_t now_t = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime_r(&now_t, &tm));
    for (int k = 1; k < 100; k++) {
        char *dir = k == 1 ? xprintf("sweep-%s", stamp) : xprintf("sweep-%s-%d", stamp, k);
        if (mkdir(dir, 0755) == 0) {
            *created = true;
            return dir;
        }
        int err = errno;
        if (err != EEXIST) {
            fprintf(stderr, "lathe sweep: cannot create the folder %s: %s\n", dir, strerror(err));
            free(dir);
            return NULL;
        }
        free(dir);
    }
    fprintf(stderr, "lathe sweep: every sweep-%s folder name is taken; give --out DIR\n", stamp);
    return NULL;
}

static char *model_name(const char *model) {
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    size_t n = strlen(base);
    if (n > 6 && !strcmp(base + n - 6, ".lathe"))
        n -= 6;
    return n ? xprintf("%.*s", (int)n, base) : xprintf("model");
}

int sweep_main(int argc, char **argv, SweepCompileFn compile) {
    Sweep s;
    sweep_init(&s);
    if (!sweep_parse_args(&s, argc, argv) || (!s.help && !sweep_plan(&s))) {
        fprintf(stderr, "lathe sweep: %s\n", s.err);
        sweep_free(&s);
        return 2;
    }
    if (s.help) {
        fputs(sweep_usage, stdout);
        sweep_free(&s);
        return 0;
    }
    bool created;
    char *dir = out_dir(&s, &created);
    if (!dir) {
        sweep_free(&s);
        return 1;
    }
    s.out = dir;
    char *name = model_name(s.model), *exe = xprintf("%s/%s", dir, name);
    free(name);
    int rc = compile(s.model, exe);
    if (rc != 0) {
        if (created)
            rmdir(dir);
        free(exe);
        free(dir);
        sweep_free(&s);
        return rc;
    }
    fprintf(stderr, "lathe sweep: %d trials of %s, %d at a time, in %s/\n", s.ntrials, s.model, s.jobs, dir);
    run_trials(&s, exe);
    unlink(exe);
    free(exe);
    sweep_score(&s);
    sweep_rank(&s);
    sweep_print_table(stdout, &s);
    fflush(stdout);
    char *csv = s.csv ? xprintf("%s", s.csv) : xprintf("%s/sweep.csv", dir);
    FILE *f = fopen(csv, "w");
    bool written = f && sweep_write_csv(f, &s);
    if (f && fclose(f) != 0)
        written = false;
    int nok = 0;
    for (int t = 0; t < s.ntrials; t++)
        nok += s.trials[t].state == SWEEP_OK;
    if (!written)
        fprintf(stderr, "lathe sweep: cannot write %s: %s\n", csv, strerror(errno));
    else
        fprintf(stderr, "lathe sweep: %d of %d trials ok, ranked by %s (%s); table in %s\n", nok, s.ntrials, s.metric,
                s.maximize ? "max" : "min", csv);
    rc = stop_signal ? 128 + stop_signal : nok > 0 && written ? 0 : 1;
    if (stop_signal)
        fprintf(stderr, "lathe sweep: stopped by %s\n", strsignal(stop_signal));
    free(csv);
    free(dir);
    sweep_free(&s);
    return rc;
}
