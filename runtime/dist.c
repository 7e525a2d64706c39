/* dist.c: the data-parallel side of the runtime that does not depend on the backend (dist.h): joining the
   job, collectives with a deadline, each rank's share of a batch, the gradient buckets reduced while
   backward runs, and the metrics summed across ranks. */
#include "dist.h"

#include "lathe_kern.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

RtDist rt_dist = {.rank = 0, .size = 1, .ops = NULL, .timeout = RT_DIST_TIMEOUT};

/* The launcher's environment: Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE (PMIx launchers PMIX_RANK). */
static int launched_size(void) {
    const char *s = getenv("OMPI_COMM_WORLD_SIZE");
    return s ? atoi(s) : getenv("PMIX_RANK") ? 2 : 1;
}

int rt_dist_init(RtErr *e) {
    const RtDistOps *ops = rt_dist_mpi_ops ? rt_dist_mpi_ops() : NULL;
    if (!ops || !ops->launched()) {
        if (launched_size() > 1)
            return rt_errf(e, "started by mpirun with %d processes, but this executable was compiled without --mpi, so "
                              "each would train alone: compile it with `lathe compile MODEL --mpi -o OUT`",
                           launched_size());
        return RT_OK;
    }
    int rank = 0, size = 1;
    if (ops->init(&rank, &size, e) != RT_OK)
        return RT_ERR;
    rt_dist.ops = ops;
    rt_dist.rank = rank;
    rt_dist.size = size;
    /* only rank 0 prints: the others' results are the same numbers */
    if (rank != 0 && !freopen("/dev/null", "w", stdout))
        return rt_errf(e, "rank %d: cannot silence standard output", rank);
    return RT_OK;
}

void rt_dist_finalize(void) {
    if (rt_dist.ops)
        rt_dist.ops->finalize();
    rt_dist.ops = NULL;
    rt_dist.rank = 0;
    rt_dist.size = 1;
}

void rt_dist_abort(int status) {
    if (rt_dist.ops && rt_dist.size > 1)
        rt_dist.ops->abort(status);
}

void rt_dist_share(int64_t n, int64_t *lo, int64_t *hi) {
    /* n * r fits: n is a batch (< 2^53 samples), r < 2^31 */
    *lo = n * rt_dist.rank / rt_dist.size;
    *hi = n * (rt_dist.rank + 1) / rt_dist.size;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits for *req, progressing the backend, until the deadline: spins for the first millisecond (a
   collective between processes of one machine takes microseconds), then sleeps between tests. */
static int wait_req(void **req, const char *what, RtErr *e) {
    double t0 = now_s();
    for (long spins = 0;; spins++) {
        bool done = false;
        if (rt_dist.ops->test(req, &done, e) != RT_OK)
            return RT_ERR;
        if (done)
            return RT_OK;
        if (spins % 64 != 63) /* the clock every 64 tests: a test is a fraction of a microsecond */
            continue;
        double t = now_s() - t0;
        if (t > rt_dist.timeout) {
            /* the job cannot go on: say why here, then end every process (mpirun reports the abort) */
            rt_errf(e, "rank %d: %s did not complete within %g s (--dist-timeout): another process has died or "
                       "hangs", rt_dist.rank, what, rt_dist.timeout);
            fprintf(stderr, "error: %s\n", e->msg);
            fflush(stderr);
            rt_dist_abort(1);
            return RT_ERR;
        }
        if (t > 1e-3) {
            struct timespec ns = {0, 50000};
            nanosleep(&ns, NULL);
        }
    }
}

/* The largest element count of one backend call. */
#define CHUNK (1 << 30)

static size_t type_size(RtDistType t) { return t == RT_DIST_F64 ? 8 : 4; }

int rt_dist_allreduce(void *buf, int64_t count, RtDistType t, RtErr *e) {
    if (!rt_dist_on())
        return RT_OK;
    for (int64_t at = 0; at < count; at += CHUNK) {
        int n = (int)(count - at < CHUNK ? count - at : CHUNK);
        void *req = NULL;
        if (rt_dist.ops->iallreduce((char *)buf + (size_t)at * type_size(t), n, t, &req, e) != RT_OK ||
            wait_req(&req, "an allreduce", e) != RT_OK)
            return RT_ERR;
    }
    return RT_OK;
}

int rt_dist_bcast(void *buf, int64_t bytes, RtErr *e) {
    if (!rt_dist_on())
        return RT_OK;
    for (int64_t at = 0; at < bytes; at += CHUNK) {
        int n = (int)(bytes - at < CHUNK ? bytes - at : CHUNK);
        void *req = NULL;
        if (rt_dist.ops->ibcast((char *)buf + at, n, &req, e) != RT_OK || wait_req(&req, "a broadcast", e) != RT_OK)
            return RT_ERR;
    }
    return RT_OK;
}

/* ---------------------------------------------------------------- gradient buckets */

typedef struct RtBucket {
    char *data;           /* inside the block */
    int64_t count;        /* elements */
    RtDistType type;
    int pending;          /* gradients not written yet this step */
    int ngrads;
    bool started;
    void *req[8];         /* the backend's requests, one per CHUNK */
    int nreq;
} RtBucket;

/* The one hook of the process: the grads graph of the binding being synchronized. */
static RtGradSync *active;

static void scale(RtBucket *k, double w) {
    if (w == 1.0)
        return;
    if (k->type == RT_DIST_F64) {
        double *p = (double *)k->data;
        for (int64_t i = 0; i < k->count; i++)
            p[i] *= w;
    } else {
        float *p = (float *)k->data, f = (float)w;
        for (int64_t i = 0; i < k->count; i++)
            p[i] *= f;
    }
}

static int start_bucket(RtGradSync *s, RtBucket *k, RtErr *e) {
    k->started = true;
    scale(k, s->weight);
    size_t es = type_size(k->type);
    for (int64_t at = 0; at < k->count; at += CHUNK) {
        int n = (int)(k->count - at < CHUNK ? k->count - at : CHUNK);
        if (rt_dist.ops->iallreduce(k->data + (size_t)at * es, n, k->type, &k->req[k->nreq++], e) != RT_OK)
            return RT_ERR;
    }
    return RT_OK;
}

/* Progress on every started bucket (Open MPI moves a nonblocking collective along only inside its calls). */
static int progress(RtGradSync *s, RtErr *e) {
    for (int i = 0; i < s->nbuckets; i++) {
        RtBucket *k = &s->bucket[i];
        for (int r = 0; r < k->nreq; r++) {
            bool done;
            if (k->req[r] && rt_dist.ops->test(&k->req[r], &done, e) != RT_OK)
                return RT_ERR;
        }
    }
    return RT_OK;
}

static void on_ready(int32_t graph, int32_t arg) {
    RtGradSync *s = active;
    if (!s || s->failed || graph != 1 || arg < 0 || arg >= s->b->g->nargs || s->bucket_of_arg[arg] < 0)
        return;
    RtBucket *k = &s->bucket[s->bucket_of_arg[arg]];
    if (--k->pending == 0 && start_bucket(s, k, &s->err) != RT_OK)
        s->failed = true;
    if (!s->failed && progress(s, &s->err) != RT_OK)
        s->failed = true;
}

static RtDistType dist_type(RtDType t) { return t == RT_F64 ? RT_DIST_F64 : RT_DIST_F32; }

int rt_gradsync_open(RtGradSync *s, RtBinding *b, const RtManifest *m, RtErr *e) {
    memset(s, 0, sizeof *s);
    s->b = b;
    const RtGraph *g = b->g;
    s->bucket_of_arg = malloc((size_t)(g->nargs > 0 ? g->nargs : 1) * sizeof *s->bucket_of_arg);
    s->saved = calloc((size_t)(g->nargs > 0 ? g->nargs : 1), sizeof *s->saved);
    s->bucket = calloc((size_t)m->nparams + 1, sizeof *s->bucket);
    if (!s->bucket_of_arg || !s->saved || !s->bucket)
        return rt_errf(e, "out of memory");
    for (int a = 0; a < g->nargs; a++)
        s->bucket_of_arg[a] = -1;
    /* buckets in reverse parameter order (backward writes the last layers' gradients first), a new bucket at
       about RT_DIST_BUCKET_BYTES or where the dtype changes; each gradient 64-byte aligned in the block */
    int64_t total = 0, in_bucket = 0;
    RtBucket *k = NULL;
    int64_t *offset = calloc((size_t)m->nparams + 1, sizeof *offset);
    if (!offset)
        return rt_errf(e, "out of memory");
    for (int p = m->nparams - 1; p >= 0; p--) {
        int a = b->grad_arg[p];
        if (a < 0)
            continue;
        const RtTensorSpec *sp = &g->args[a];
        int64_t n;
        if (!rt_numel(sp, 1, &n))
            return free(offset), rt_errf(e, "gradient %s: too large", sp->name);
        if (n > (int64_t)8 * CHUNK)
            return free(offset), rt_errf(e, "gradient %s: more than 2^33 values, too large to reduce", sp->name);
        int64_t bytes = n * (int64_t)rt_dtype_size(sp->dtype);
        if (!k || in_bucket >= RT_DIST_BUCKET_BYTES || k->type != dist_type(sp->dtype) ||
            k->count + n > (int64_t)8 * CHUNK) {
            k = &s->bucket[s->nbuckets++];
            k->type = dist_type(sp->dtype);
            in_bucket = 0;
            total = (total + 63) & ~(int64_t)63; /* a bucket starts aligned and is contiguous */
            k->data = (char *)(intptr_t)total;   /* an offset until the block exists */
        }
        offset[p] = total;
        total += bytes;
        in_bucket += bytes;
        k->count += n;
        k->ngrads++;
        s->bucket_of_arg[a] = (int)(k - s->bucket);
    }
    s->block = aligned_alloc(64, (size_t)((total + 63) & ~(int64_t)63) + 64);
    if (!s->block)
        return free(offset), rt_errf(e, "out of memory: %lld bytes of gradients", (long long)total);
    for (int i = 0; i < s->nbuckets; i++)
        s->bucket[i].data = (char *)s->block + (intptr_t)s->bucket[i].data;
    for (int p = 0; p < m->nparams; p++) {
        int a = b->grad_arg[p];
        if (a < 0)
            continue;
        s->saved[a] = b->args[a];
        b->args[a] = (char *)s->block + offset[p];
    }
    free(offset);
    return RT_OK;
}

void rt_gradsync_close(RtGradSync *s) {
    if (active == s) {
        active = NULL;
        lathe_output_ready_hook = NULL;
    }
    if (s->b && s->saved)
        for (int a = 0; a < s->b->g->nargs; a++)
            if (s->saved[a])
                s->b->args[a] = s->saved[a];
    free(s->saved);
    free(s->bucket_of_arg);
    free(s->bucket);
    free(s->block);
    memset(s, 0, sizeof *s);
}

void rt_gradsync_begin(RtGradSync *s, double weight) {
    s->weight = weight;
    s->failed = false;
    for (int i = 0; i < s->nbuckets; i++) {
        RtBucket *k = &s->bucket[i];
        k->pending = k->ngrads;
        k->started = false;
        k->nreq = 0;
    }
    active = s;
    lathe_output_ready_hook = on_ready;
}

int rt_gradsync_end(RtGradSync *s, bool ran, RtErr *e) {
    active = NULL;
    lathe_output_ready_hook = NULL;
    if (s->failed) {
        *e = s->err;
        return RT_ERR;
    }
    for (int i = 0; i < s->nbuckets; i++) {
        RtBucket *k = &s->bucket[i];
        if (!ran) /* no samples here: this rank adds nothing */
            memset(k->data, 0, (size_t)k->count * type_size(k->type));
        if (!k->started && start_bucket(s, k, e) != RT_OK)
            return RT_ERR;
    }
    for (int i = 0; i < s->nbuckets; i++)
        for (int r = 0; r < s->bucket[i].nreq; r++)
            if (s->bucket[i].req[r] && wait_req(&s->bucket[i].req[r], "the gradients' allreduce", e) != RT_OK)
                return RT_ERR;
    return RT_OK;
}

/* ---------------------------------------------------------------- metrics */

/* The counters of s as doubles (exact: every count is below 2^53), in one fixed order; returns how many. */
static int64_t metric_fields(RtMetrics *s, double *out, bool store) {
    int64_t n = 0, C = s->classes;
#define FIELD(x)                          \
    do {                                  \
        if (out && store)                 \
            out[n] = (double)(x);         \
        else if (out)                     \
            (x) = (__typeof__(x))out[n];  \
        n++;                              \
    } while (0)
    FIELD(s->loss_sum);
    FIELD(s->samples);
    FIELD(s->counted);
    FIELD(s->correct);
    FIELD(s->abs_sum);
    FIELD(s->sq_sum);
    FIELD(s->values);
    for (int i = 0; i < RT_MAX_METRICS; i++) {
        FIELD(s->topk_correct[i]);
        FIELD(s->custom_sum[i]);
        FIELD(s->custom_samples[i]);
    }
    for (int64_t c = 0; s->tp && c < C; c++) {
        FIELD(s->tp[c]);
        FIELD(s->true_count[c]);
        FIELD(s->pred_count[c]);
    }
    for (int64_t c = 0; s->confusion && c < C * C; c++)
        FIELD(s->confusion[c]);
#undef FIELD
    return n;
}

int rt_dist_reduce_metrics(RtMetrics *s, RtErr *e) {
    if (!rt_dist_on())
        return RT_OK;
    int64_t n = metric_fields(s, NULL, false);
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return rt_errf(e, "out of memory");
    metric_fields(s, v, true);
    int rc = rt_dist_allreduce(v, n, RT_DIST_F64, e);
    if (rc == RT_OK)
        metric_fields(s, v, false);
    free(v);
    return rc;
}
