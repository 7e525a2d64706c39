/* profile.c: --profile FILE (profile.h). The graph entries are wrapped to time each call and number it;
   the kernels' timed calls (kern_profile.c) arrive at sink(), which adds them to their kernel's totals and,
   within the traced calls, to a bounded list of events; at the end the events become a Chrome trace, written
   atomically, and the totals a table of time per model line. */
#include "profile.h"
#include "lathe_kern.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NGRAPHS 4 /* train, grads, eval, predict: lathe_kern.h's graph numbers */
#define TABLE_KERNELS 20

typedef struct ProfKernel {
    int node;
    const char *name; /* borrowed from the manifest */
    int nlines;
    const char **lines; /* "fashion_cnn.lathe:12", borrowed */
    double *share;      /* of the kernel's time, each line's */
    double flops[3], bytes[3]; /* c0 + c1 n + c2 n^2; c0 < 0: unknown */
    /* [0]: the graph's first call, [1]: every later one */
    int64_t calls[2];
    double ns[2], flop[2], byte[2];
} ProfKernel;

typedef struct ProfGraph {
    RtGraph *g;
    LatheGraphFn real;
    int nkernels;
    ProfKernel *k;
    int nnodes;
    int *by_node; /* kernel index by root node id, -1: none */
    int64_t calls;
    int64_t steps[2];
    double step_ns[2];
} ProfGraph;

typedef struct ProfEvent {
    int graph, kernel; /* kernel -1: the graph call itself */
    int64_t call, n, start, end;
} ProfEvent;

typedef struct EventList {
    ProfEvent *ev;
    size_t n, cap;
} EventList;

static struct {
    bool open;
    char *path;
    int64_t first, last, t0;
    const char *model;
    ProfGraph g[NGRAPHS];
    EventList trace, warm; /* warm: the first call of each graph, for a graph never called first times */
    bool cut;
} P;

/* Guards P's counters and events: a graph's kernels run on the thread that called it, but nothing says that
   every graph runs on one thread. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double poly(const double c[3], int64_t n) {
    return c[0] < 0 ? NAN : c[0] + c[1] * (double)n + c[2] * (double)n * (double)n;
}

/* ---------------------------------------------------------------- the kernel list of the manifest */

static void poly_read(json_t *a, double c[3]) {
    c[0] = -1;
    c[1] = c[2] = 0;
    if (json_is_array(a) && json_array_size(a) == 3)
        for (int i = 0; i < 3; i++)
            c[i] = json_number_value(json_array_get(a, (size_t)i));
}

static int read_kernel(json_t *j, ProfKernel *k, RtErr *e) {
    json_t *node = json_object_get(j, "node"), *lines = json_object_get(j, "lines");
    json_t *share = json_object_get(j, "share");
    if (!json_is_integer(node) || json_integer_value(node) < 0 || json_integer_value(node) > (1 << 30))
        return rt_errf(e, "manifest: a kernel of the kernel list has no valid node");
    k->node = (int)json_integer_value(node);
    k->name = json_string_value(json_object_get(j, "name"));
    if (!k->name)
        k->name = "kernel";
    k->nlines = json_is_array(lines) ? (int)json_array_size(lines) : 0;
    k->lines = calloc((size_t)k->nlines + 1, sizeof *k->lines);
    k->share = calloc((size_t)k->nlines + 1, sizeof *k->share);
    if (!k->lines || !k->share)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < k->nlines; i++) {
        const char *l = json_string_value(json_array_get(lines, (size_t)i));
        k->lines[i] = l ? l : "?";
        json_t *s = json_array_get(share, (size_t)i);
        k->share[i] = json_is_number(s) ? json_number_value(s) : 1.0 / k->nlines;
    }
    poly_read(json_object_get(j, "flops"), k->flops);
    poly_read(json_object_get(j, "bytes"), k->bytes);
    return RT_OK;
}

/* The kernels of graph g from the manifest (none in a manifest older than --profile). */
static int read_graph(const RtManifest *m, ProfGraph *pg, RtErr *e) {
    json_t *list = json_object_get(json_object_get(json_object_get(m->root, "graphs"), pg->g->name), "kernel_list");
    pg->nkernels = json_is_array(list) ? (int)json_array_size(list) : 0;
    pg->k = calloc((size_t)pg->nkernels + 1, sizeof *pg->k);
    if (!pg->k)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < pg->nkernels; i++) {
        if (read_kernel(json_array_get(list, (size_t)i), &pg->k[i], e) != RT_OK)
            return RT_ERR;
        if (pg->k[i].node >= pg->nnodes)
            pg->nnodes = pg->k[i].node + 1;
    }
    pg->by_node = malloc(((size_t)pg->nnodes + 1) * sizeof *pg->by_node);
    if (!pg->by_node)
        return rt_errf(e, "out of memory");
    for (int i = 0; i < pg->nnodes; i++)
        pg->by_node[i] = -1;
    for (int i = 0; i < pg->nkernels; i++)
        pg->by_node[pg->k[i].node] = i;
    return RT_OK;
}

static void free_graphs(void) {
    for (int gi = 0; gi < NGRAPHS; gi++) {
        ProfGraph *pg = &P.g[gi];
        for (int i = 0; i < pg->nkernels; i++) {
            free(pg->k[i].lines);
            free(pg->k[i].share);
        }
        free(pg->k);
        free(pg->by_node);
    }
}

/* ---------------------------------------------------------------- recording */

/* Appends an event, or marks the trace cut once the list is full or memory is short. */
static void push(EventList *l, ProfEvent ev) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 1024;
        ProfEvent *grown = l->n >= RT_PROFILE_MAX_EVENTS ? NULL : realloc(l->ev, cap * sizeof *grown);
        if (!grown) {
            P.cut = true;
            return;
        }
        l->ev = grown;
        l->cap = cap;
    }
    l->ev[l->n++] = ev;
}

/* Into the trace when the call is among those traced, or among the warm-up events when it is a graph's
   first call and the trace starts later. */
static void record(ProfEvent ev) {
    if (ev.call >= P.first && ev.call <= P.last)
        push(&P.trace, ev);
    else if (ev.call == 1)
        push(&P.warm, ev);
}

static void sink(int32_t graph, int32_t node, int64_t n, int64_t start, int64_t end) {
    if (graph < 0 || graph >= NGRAPHS)
        return; /* a graph of another name (the tests' JIT) */
    pthread_mutex_lock(&lock);
    ProfGraph *pg = &P.g[graph];
    int ki = node >= 0 && node < pg->nnodes ? pg->by_node[node] : -1;
    if (pg->calls > 0 && ki >= 0) {
        ProfKernel *k = &pg->k[ki];
        int w = pg->calls > 1;
        k->calls[w]++;
        k->ns[w] += (double)(end - start);
        k->flop[w] += poly(k->flops, n);
        k->byte[w] += poly(k->bytes, n);
        record((ProfEvent){graph, ki, pg->calls, n, start, end});
    }
    pthread_mutex_unlock(&lock);
}

static void run_timed(int gi, void **args, int64_t n, uint8_t *arena) {
    ProfGraph *pg = &P.g[gi];
    pthread_mutex_lock(&lock);
    int64_t call = ++pg->calls;
    pthread_mutex_unlock(&lock);
    int64_t start = now_ns();
    pg->real(args, n, arena);
    int64_t end = now_ns();
    pthread_mutex_lock(&lock);
    pg->steps[call > 1]++;
    pg->step_ns[call > 1] += (double)(end - start);
    record((ProfEvent){gi, -1, call, n, start, end});
    pthread_mutex_unlock(&lock);
}

static void timed_train(void **a, int64_t n, uint8_t *arena) { run_timed(0, a, n, arena); }
static void timed_grads(void **a, int64_t n, uint8_t *arena) { run_timed(1, a, n, arena); }
static void timed_eval(void **a, int64_t n, uint8_t *arena) { run_timed(2, a, n, arena); }
static void timed_predict(void **a, int64_t n, uint8_t *arena) { run_timed(3, a, n, arena); }

static RtGraph *graph_of(RtManifest *m, int gi) {
    RtGraph *gs[NGRAPHS] = {&m->train, &m->grads, &m->eval, &m->predict};
    return gs[gi];
}

/* ---------------------------------------------------------------- opening */

/* The temporary file beside path: DIR/.NAME.tmp-PID. */
static void temp_path(const char *path, char *tmp, size_t n) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(tmp, n, ".%s.tmp-%ld", path, (long)getpid());
    else
        snprintf(tmp, n, "%.*s/.%s.tmp-%ld", (int)(slash - path), path, slash + 1, (long)getpid());
}

/* Whether path can be written: not a folder, and a file can be created beside it. */
static int check_writable(const char *path, RtErr *e) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return rt_errf(e, "--profile: %s is a folder; give the trace's file name", path);
    char tmp[4200];
    temp_path(path, tmp, sizeof tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_errf(e, "--profile: cannot write %s: %s", path, strerror(errno));
    close(fd);
    unlink(tmp);
    return RT_OK;
}

int rt_profile_open(RtManifest *m, const char *path, int64_t first, int64_t last, RtErr *e) {
    if (P.open)
        return rt_errf(e, "--profile: a profile is already open");
    if (strlen(path) > 4000)
        return rt_errf(e, "--profile: the file name is too long");
    if (check_writable(path, e) != RT_OK)
        return RT_ERR;
    memset(&P, 0, sizeof P);
    P.path = strdup(path);
    if (!P.path)
        return rt_errf(e, "out of memory");
    P.first = first > 0 ? first : RT_PROFILE_FIRST;
    P.last = first > 0 ? last : RT_PROFILE_LAST;
    P.model = m->model;
    static const LatheGraphFn timed[NGRAPHS] = {timed_train, timed_grads, timed_eval, timed_predict};
    for (int gi = 0; gi < NGRAPHS; gi++) {
        ProfGraph *pg = &P.g[gi];
        pg->g = graph_of(m, gi);
        if (read_graph(m, pg, e) != RT_OK) {
            free_graphs();
            free(P.path);
            return RT_ERR;
        }
    }
    for (int gi = 0; gi < NGRAPHS; gi++) {
        ProfGraph *pg = &P.g[gi];
        pg->real = pg->g->fn;
        if (pg->real)
            pg->g->fn = timed[gi];
    }
    P.t0 = now_ns();
    P.open = true;
    lathe_profile_sink = sink;
    lathe_profile_on = 1;
    return RT_OK;
}

/* ---------------------------------------------------------------- the trace */

void rt_profile_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (*p < 0x20)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Microseconds since the profile opened, as the trace's "ts" and "dur" are. */
static double us(int64_t ns) { return (double)ns / 1000.0; }

static void write_event(FILE *f, const ProfEvent *ev, bool *first) {
    const ProfGraph *pg = &P.g[ev->graph];
    fputs(*first ? "\n" : ",\n", f);
    *first = false;
    fputs("{\"name\": ", f);
    if (ev->kernel < 0) {
        char name[64];
        snprintf(name, sizeof name, "%s step %lld", pg->g->name, (long long)ev->call);
        rt_profile_json_string(f, name);
    } else {
        rt_profile_json_string(f, pg->k[ev->kernel].name);
    }
    fprintf(f, ", \"cat\": \"%s\", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f, \"pid\": 1, \"tid\": %d, \"args\": {",
            ev->kernel < 0 ? "step" : "kernel", us(ev->start - P.t0), us(ev->end - ev->start), ev->graph + 1);
    fprintf(f, "\"graph\": \"%s\", \"step\": %lld, \"batch\": %lld", pg->g->name, (long long)ev->call,
            (long long)ev->n);
    if (ev->kernel >= 0) {
        const ProfKernel *k = &pg->k[ev->kernel];
        fprintf(f, ", \"node\": \"%%%d\", \"lines\": [", k->node);
        for (int i = 0; i < k->nlines; i++) {
            fputs(i ? ", " : "", f);
            rt_profile_json_string(f, k->lines[i]);
        }
        fputs("]", f);
        double fl = poly(k->flops, ev->n), by = poly(k->bytes, ev->n);
        if (!isnan(fl))
            fprintf(f, ", \"flops\": %.0f", fl);
        if (!isnan(by))
            fprintf(f, ", \"bytes\": %.0f", by);
    }
    fputs("}}", f);
}

/* Metadata events: the process named after the model, one thread a graph. */
static void write_names(FILE *f, bool *first) {
    fputs("\n{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": 0, \"args\": {\"name\": ", f);
    rt_profile_json_string(f, P.model ? P.model : "model");
    fputs("}}", f);
    *first = false;
    for (int gi = 0; gi < NGRAPHS; gi++)
        if (P.g[gi].calls > 0)
            fprintf(f, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, \"tid\": %d, \"args\": {\"name\": "
                       "\"%s\"}}",
                    gi + 1, P.g[gi].g->name);
}

static void write_trace(FILE *f) {
    bool first = true;
    fputs("{\"traceEvents\": [", f);
    write_names(f, &first);
    for (size_t i = 0; i < P.trace.n; i++)
        write_event(f, &P.trace.ev[i], &first);
    /* a graph called fewer than first times (predict: once) shows its first call */
    for (size_t i = 0; i < P.warm.n; i++)
        if (P.g[P.warm.ev[i].graph].calls < P.first)
            write_event(f, &P.warm.ev[i], &first);
    fprintf(f, "\n],\n\"displayTimeUnit\": \"ms\",\n\"otherData\": {\"model\": ");
    rt_profile_json_string(f, P.model ? P.model : "model");
    fprintf(f, ", \"steps\": \"%lld:%lld\", \"cut\": %s}}\n", (long long)P.first, (long long)P.last,
            P.cut ? "true" : "false");
}

/* Writes the trace to a temporary file beside the path, syncs it and renames it into place. */
static int save_trace(RtErr *e) {
    char tmp[4200];
    temp_path(P.path, tmp, sizeof tmp);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return rt_errf(e, "--profile: cannot write %s: %s", P.path, strerror(errno));
    write_trace(f);
    int failed = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    int saved = errno;
    if (fclose(f) != 0 && !failed) {
        failed = 1;
        saved = errno;
    }
    if (failed || rename(tmp, P.path) != 0) {
        if (!failed)
            saved = errno;
        unlink(tmp);
        return rt_errf(e, "--profile: cannot write %s: %s", P.path, strerror(saved));
    }
    return RT_OK;
}

/* ---------------------------------------------------------------- the table */

typedef struct LineTime {
    const char *line;
    double ns;
} LineTime;

typedef struct KernelTime {
    const ProfGraph *pg;
    const ProfKernel *k;
    double ns, flop, byte;
    int64_t calls;
} KernelTime;

static int by_line_time(const void *a, const void *b) {
    double x = ((const LineTime *)a)->ns, y = ((const LineTime *)b)->ns;
    return x < y ? 1 : x > y ? -1 : strcmp(((const LineTime *)a)->line, ((const LineTime *)b)->line);
}

static int by_kernel_time(const void *a, const void *b) {
    double x = ((const KernelTime *)a)->ns, y = ((const KernelTime *)b)->ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Which totals a graph's table uses: its later calls, or its first when it ran once. */
static int part(const ProfGraph *pg) { return pg->calls > 1; }

static void add_line(LineTime *lt, int *n, const char *line, double ns) {
    for (int i = 0; i < *n; i++)
        if (strcmp(lt[i].line, line) == 0) {
            lt[i].ns += ns;
            return;
        }
    lt[(*n)++] = (LineTime){line, ns};
}

/* "fashion_cnn.lathe:10,11": the lines of a kernel, each file named once. */
static void lines_text(const ProfKernel *k, char *buf, size_t n) {
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < k->nlines && len < n; i++) {
        const char *l = k->lines[i], *colon = strrchr(l, ':');
        const char *prev = i ? k->lines[i - 1] : NULL, *pcolon = prev ? strrchr(prev, ':') : NULL;
        bool same_file = colon && pcolon && colon - l == pcolon - prev && strncmp(l, prev, (size_t)(colon - l)) == 0;
        int w = snprintf(buf + len, n - len, "%s%s", i ? (same_file ? "," : ", ") : "", same_file ? colon + 1 : l);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static void rate(FILE *f, double amount, double ns) {
    if (isnan(amount) || ns <= 0)
        fprintf(f, " %9s", "-");
    else
        fprintf(f, " %9.2f", amount / ns); /* per ns: giga per second */
}

static void print_lines(FILE *f, const KernelTime *kt, int nk, double total) {
    int cap = 1;
    for (int i = 0; i < nk; i++)
        cap += kt[i].k->nlines ? kt[i].k->nlines : 1;
    LineTime *lt = calloc((size_t)cap, sizeof *lt);
    if (!lt)
        return;
    int nl = 0;
    for (int i = 0; i < nk; i++) {
        const ProfKernel *k = kt[i].k;
        if (k->nlines == 0)
            add_line(lt, &nl, "(no model line)", kt[i].ns);
        for (int j = 0; j < k->nlines; j++)
            add_line(lt, &nl, k->lines[j], kt[i].ns * k->share[j]);
    }
    qsort(lt, (size_t)nl, sizeof *lt, by_line_time);
    fprintf(f, "time by model line:\n  %10s %6s  %s\n", "ms", "%", "line");
    for (int i = 0; i < nl; i++)
        fprintf(f, "  %10.3f %5.1f%%  %s\n", lt[i].ns / 1e6, total > 0 ? 100 * lt[i].ns / total : 0.0, lt[i].line);
    free(lt);
}

static void print_kernels(FILE *f, const KernelTime *kt, int nk, double total) {
    fprintf(f, "time by kernel%s:\n  %10s %6s %7s %9s %9s  %s\n", nk > TABLE_KERNELS ? " (the slowest)" : "", "ms",
            "%", "calls", "GFLOP/s", "GB/s", "kernel");
    for (int i = 0; i < nk && i < TABLE_KERNELS; i++) {
        char lines[512];
        lines_text(kt[i].k, lines, sizeof lines);
        fprintf(f, "  %10.3f %5.1f%% %7lld", kt[i].ns / 1e6, total > 0 ? 100 * kt[i].ns / total : 0.0,
                (long long)kt[i].calls);
        rate(f, kt[i].flop, kt[i].ns);
        rate(f, kt[i].byte, kt[i].ns);
        fprintf(f, "  %s %s  %s\n", kt[i].pg->g->name, kt[i].k->name, lines[0] ? lines : "(no model line)");
    }
    if (nk > TABLE_KERNELS)
        fprintf(f, "  ... and %d more kernels\n", nk - TABLE_KERNELS);
}

static void print_summary(FILE *f) {
    fprintf(f, "profile:");
    bool warmup_left_out = false;
    for (int gi = 0, said = 0; gi < NGRAPHS; gi++) {
        const ProfGraph *pg = &P.g[gi];
        if (pg->calls == 0)
            continue;
        int w = part(pg);
        fprintf(f, "%s %lld %s call%s (%.3f ms)", said++ ? "," : "", (long long)pg->steps[w], pg->g->name,
                pg->steps[w] == 1 ? "" : "s", pg->step_ns[w] / 1e6);
        warmup_left_out |= w == 1;
    }
    fprintf(f, "%s; trace of calls %lld to %lld in %s%s\n",
            warmup_left_out ? ", the first call of each graph (a warm-up) left out" : "", (long long)P.first,
            (long long)P.last, P.path, P.cut ? " (cut short: too many events)" : "");
}

static void print_table(FILE *f) {
    int nk = 0;
    for (int gi = 0; gi < NGRAPHS; gi++)
        nk += P.g[gi].nkernels;
    KernelTime *kt = calloc((size_t)nk + 1, sizeof *kt);
    if (!kt)
        return;
    nk = 0;
    double total = 0;
    for (int gi = 0; gi < NGRAPHS; gi++) {
        const ProfGraph *pg = &P.g[gi];
        int w = part(pg);
        for (int i = 0; i < pg->nkernels; i++) {
            const ProfKernel *k = &pg->k[i];
            if (k->calls[w] == 0)
                continue;
            kt[nk++] = (KernelTime){pg, k, k->ns[w], k->flop[w], k->byte[w], k->calls[w]};
            total += k->ns[w];
        }
    }
    print_summary(f);
    if (nk == 0) {
        fprintf(f, "no kernel was timed: this program's manifest lists no kernels (compiled before --profile)\n");
    } else {
        qsort(kt, (size_t)nk, sizeof *kt, by_kernel_time);
        print_lines(f, kt, nk, total);
        print_kernels(f, kt, nk, total);
    }
    free(kt);
}

/* ---------------------------------------------------------------- closing */

int rt_profile_close(RtManifest *m, FILE *table, RtErr *e) {
    if (!P.open)
        return RT_OK;
    lathe_profile_on = 0;
    lathe_profile_sink = NULL;
    for (int gi = 0; gi < NGRAPHS; gi++)
        if (P.g[gi].real)
            graph_of(m, gi)->fn = P.g[gi].real;
    bool ran = false;
    for (int gi = 0; gi < NGRAPHS; gi++)
        ran |= P.g[gi].calls > 0;
    int rc = ran ? save_trace(e) : RT_OK;
    if (ran && table) {
        print_table(table);
        fflush(table);
    }
    free_graphs();
    free(P.trace.ev);
    free(P.warm.ev);
    free(P.path);
    P.open = false;
    return rc;
}
