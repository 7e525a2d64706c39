/* memcheck.c: out of memory, told before it happens. The memory there is (/proc/meminfo, the cgroup's limit,
   or LATHE_MEMORY_LIMIT), what a training run will allocate at a batch (every buffer that driver.c, rt_bind,
   the loader and the optimizer allocate, and the data sets as loaded), the largest batch that fits, and the
   check that cmd_train runs before its first step. */
#include "memcheck.h"
#include "train.h"

#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- reading the files */

static bool add64(int64_t a, int64_t b, int64_t *out) { return !__builtin_add_overflow(a, b, out); }
static bool mul64(int64_t a, int64_t b, int64_t *out) { return !__builtin_mul_overflow(a, b, out); }

/* A decimal count that ends at end of string or in white space; false on anything else or an overflow. */
static bool parse_count(const char *s, int64_t *out) {
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return false;
    *out = v;
    return true;
}

/* The first line of a small file (a cgroup value), without its newline. */
static bool read_line(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = 0;
    return ok;
}

int rt_mem_meminfo(const char *path, int64_t *out) {
    *out = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return RT_ERR;
    char line[256];
    int rc = RT_ERR;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "MemAvailable:", 13) != 0)
            continue;
        char *unit = line + 13 + strspn(line + 13, " \t");
        unit += strspn(unit, "0123456789");
        bool kb = strncmp(unit, " kB", 3) == 0;
        if (kb)
            *unit = 0; /* the number alone for parse_count */
        int64_t v;
        if (kb && parse_count(line + 13, &v) && mul64(v, 1024, out))
            rc = RT_OK;
        else
            *out = -1;
        break;
    }
    fclose(f);
    return rc;
}

/* The value of line "key VALUE" in a memory.stat file; 0 when the key is absent (nothing known reclaimable). */
static bool stat_value(const char *path, const char *key, int64_t *out) {
    *out = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[256];
    size_t k = strlen(key);
    bool ok = true;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, k) == 0 && line[k] == ' ') {
            ok = parse_count(line + k + 1, out);
            break;
        }
    }
    fclose(f);
    return ok;
}

int rt_mem_cgroup(const char *limit_path, const char *usage_path, const char *stat_path, const char *stat_key,
                  int64_t *out) {
    *out = -1;
    char buf[64];
    int64_t limit, usage, inactive = 0;
    if (!read_line(limit_path, buf, sizeof buf))
        return RT_ERR;
    if (strcmp(buf, "max") == 0) {
        *out = RT_MEM_UNLIMITED;
        return RT_OK;
    }
    if (!parse_count(buf, &limit))
        return RT_ERR;
    if (limit >= RT_MEM_UNLIMITED) {
        *out = RT_MEM_UNLIMITED;
        return RT_OK;
    }
    if (!read_line(usage_path, buf, sizeof buf) || !parse_count(buf, &usage))
        return RT_ERR;
    if (stat_path && stat_key && !stat_value(stat_path, stat_key, &inactive))
        inactive = 0; /* no memory.stat: count the page cache as used, the cautious side */
    int64_t used = usage - (inactive < usage ? inactive : usage);
    *out = limit > used ? limit - used : 0;
    return RT_OK;
}

int rt_mem_parse_bytes(const char *s, int64_t *out) {
    if (!s || !isdigit((unsigned char)*s))
        return RT_ERR;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || v <= 0)
        return RT_ERR;
    static const char units[] = "KMGT";
    const char *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    int64_t scale = 1;
    if (*end && !u)
        return RT_ERR;
    if (u) {
        for (const char *p = units; p <= u; p++)
            scale *= 1024;
        end++;
        if (*end == 'i')
            end++;
        if (*end == 'B' || *end == 'b')
            end++;
    }
    if (*end || !mul64(v, scale, out))
        return RT_ERR;
    return RT_OK;
}

/* ---------------------------------------------------------------- the memory there is */

/* This process's cgroup path of v2 ("0::/PATH") or of v1's memory controller ("N:...memory...:/PATH") from
   /proc/self/cgroup; "" (the mount's root) when not found. */
static void own_cgroup(bool v2, char *buf, size_t n) {
    buf[0] = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        const char *ctrl = c1 + 1;
        bool match = v2 ? (strcmp(line, "0") == 0 && !*ctrl) : strstr(ctrl, "memory") != NULL;
        if (match && strcmp(c2 + 1, "/") != 0) {
            snprintf(buf, n, "%s", c2 + 1);
            break;
        }
    }
    fclose(f);
}

/* The room that a cgroup version's limit leaves: this process's own cgroup, else the mount's root. */
static bool cgroup_room(bool v2, int64_t *out, char *where, size_t n) {
    const char *root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory";
    const char *lim = v2 ? "memory.max" : "memory.limit_in_bytes", *use = v2 ? "memory.current" : "memory.usage_in_bytes";
    char own[512];
    own_cgroup(v2, own, sizeof own);
    for (int pass = 0; pass < 2; pass++) {
        const char *dir = pass == 0 ? own : "";
        if (pass == 0 && !own[0])
            continue;
        char lp[1024], up[1024], sp[1024];
        snprintf(lp, sizeof lp, "%s%s/%s", root, dir, lim);
        snprintf(up, sizeof up, "%s%s/%s", root, dir, use);
        snprintf(sp, sizeof sp, "%s%s/memory.stat", root, dir);
        if (rt_mem_cgroup(lp, up, sp, v2 ? "inactive_file" : "total_inactive_file", out) == RT_OK) {
            snprintf(where, n, "the cgroup limit in %s less its usage", lp);
            return true;
        }
    }
    return false;
}

/* An mpirun job's processes on this machine share its memory: Open MPI says how many there are. */
static int local_processes(void) {
    if (!rt_dist_on())
        return 1;
    const char *s = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    int64_t k;
    if (!s || !parse_count(s, &k) || k < 1 || k > 1 << 20)
        return 1;
    return (int)k;
}

int rt_mem_available(RtMemAvail *a, RtErr *e) {
    memset(a, 0, sizeof *a);
    a->bytes = -1;
    const char *env = getenv(RT_MEMORY_LIMIT_ENV);
    if (env) {
        if (rt_mem_parse_bytes(env, &a->bytes) != RT_OK)
            return rt_errf(e, "%s=%.40s: expected a byte count, such as 2000000000, 512M or 8G", RT_MEMORY_LIMIT_ENV,
                           env);
        a->cap = true;
        snprintf(a->source, sizeof a->source, "%s", RT_MEMORY_LIMIT_ENV);
        return RT_OK;
    }
    int64_t v;
    if (rt_mem_meminfo("/proc/meminfo", &v) == RT_OK) {
        a->bytes = v;
        snprintf(a->source, sizeof a->source, "MemAvailable in /proc/meminfo");
    }
    char where[1100];
    for (int v2 = 1; v2 >= 0; v2--)
        if (cgroup_room(v2, &v, where, sizeof where) && v < RT_MEM_UNLIMITED && (a->bytes < 0 || v < a->bytes)) {
            a->bytes = v;
            snprintf(a->source, sizeof a->source, "%.250s", where);
        }
    int k = local_processes();
    if (a->bytes > 0 && k > 1) {
        a->bytes /= k;
        size_t len = strlen(a->source);
        snprintf(a->source + len, sizeof a->source - len, ", shared by %d processes on this machine", k);
    }
    return RT_OK;
}

/* ---------------------------------------------------------------- what the run needs */

/* Bytes that alloc_tensor (model.c) and the loader give a tensor of n samples: rounded up to 64, at least 64. */
static bool tensor_bytes(const RtTensorSpec *t, int64_t n, int64_t *out) {
    int64_t numel, bytes;
    if (!rt_numel(t, n, &numel) || !mul64(numel, (int64_t)rt_dtype_size(t->dtype), &bytes) || !add64(bytes, 63, &bytes))
        return false;
    bytes &= ~(int64_t)63;
    *out = bytes ? bytes : 64;
    return true;
}

/* The allocator's size of a block (0 for NULL): what a buffer really takes, whatever its fill. */
static int64_t block(const void *p) { return p ? (int64_t)malloc_usable_size((void *)p) : 0; }

int64_t rt_mem_dataset_bytes(const RtDataset *d) {
    if (!d)
        return 0;
    int64_t total = block(d->images) + block(d->labels) + block(d->offsets) + block(d->vocab) + block(d->features) +
                    block(d->targets) + block(d->lines) + block(d->class_names);
    for (int i = 0; d->class_names && i < d->nclass_names; i++)
        total += block(d->class_names[i]);
    return total;
}

/* Whether the run trains through the fused train graph: as open_step (train.c) decides. */
static bool trains_fused(const RtManifest *m, const RtOptimSpec *run) {
    RtOptimSpec compiled;
    RtErr ignored;
    return !rt_dist_on() && m->train.present && m->train.fn &&
           rt_optim_spec_parse(m->recipe, &compiled, &ignored) == RT_OK && rt_optim_is_fused(run, &compiled);
}

/* Parameters as rt_model_init allocates them, and the train graph's state beside them (always allocated). */
static bool model_bytes(const RtManifest *m, int64_t *params, int64_t *state) {
    *params = *state = 0;
    int64_t b;
    for (int i = 0; i < m->nparams; i++)
        if (!tensor_bytes(&m->params[i].t, 1, &b) || !add64(*params, b, params))
            return false;
    for (int i = 0; i < m->train.nargs; i++)
        if (m->train.args[i].role == RT_ROLE_STATE &&
            (!tensor_bytes(&m->train.args[i], 1, &b) || !add64(*state, b, state)))
            return false;
    return true;
}

int rt_mem_run_init(RtMemRun *r, const RtManifest *m, const RtConfig *cfg, const RtMemData *d, RtErr *e) {
    memset(r, 0, sizeof *r);
    r->m = m;
    RtOptimSpec run;
    if (rt_optim_spec_parse(cfg->recipe, &run, e) != RT_OK)
        return RT_ERR;
    bool fused = trains_fused(m, &run);
    r->step = fused || !m->grads.present ? &m->train : &m->grads;
    r->eval = m->eval.present && d->neval > 0 ? &m->eval : NULL;
    r->ntrain = d->ntrain;
    r->neval = d->neval;
    r->ranks = rt_dist.size > 1 ? rt_dist.size : 1;
    int64_t state;
    if (!model_bytes(m, &r->params, &state))
        return rt_errf(e, "the model's parameters pass 2^63 bytes");
    r->optim = state + (fused ? 0 : rt_optim_state_bytes(&run, m));
    /* the data sets, the validation split's two index arrays, and each epoch's order (8 bytes a sample) */
    for (int i = 0; i < 4; i++)
        r->data_held += rt_mem_dataset_bytes(d->sets[i]);
    if (d->nval > 0)
        r->data_held += 8 * (d->ntrain + d->nval);
    r->data = r->data_held + 8 * d->ntrain;
    r->held = r->params + state + r->data_held; /* rt_model_init's buffers and the data; optim.c's come later */
    return RT_OK;
}

/* A graph's binding at n samples (rt_bind): its arena, and its inputs and outputs, the gradients apart. */
static bool binding_bytes(const RtGraph *g, int64_t n, int64_t *arena, int64_t *io, int64_t *grads) {
    size_t a;
    if (!rt_arena_bytes(g, n, &a))
        return false;
    *arena = (int64_t)a;
    for (int i = 0; i < g->nargs; i++) {
        const RtTensorSpec *t = &g->args[i];
        int64_t b;
        if (t->role != RT_ROLE_INPUT && t->role != RT_ROLE_OUTPUT)
            continue; /* parameters and state are the model's, counted once */
        bool grad = t->role == RT_ROLE_OUTPUT && strncmp(t->name, "grad.", 5) == 0;
        int64_t *to = grad && grads ? grads : io;
        if (!tensor_bytes(t, n, &b) || !add64(*to, b, to))
            return false;
    }
    return true;
}

/* The loader's two buffer pairs: the model's input and labels, where the step takes them. */
static bool loader_bytes(const RtManifest *m, const RtGraph *g, int64_t n, int64_t *out) {
    for (int i = 0; i < g->nargs; i++) {
        const RtTensorSpec *t = &g->args[i];
        bool data = t->role == RT_ROLE_INPUT && ((m->ninputs > 0 && !strcmp(t->name, m->inputs[0].name)) ||
                                                 (m->ninputs > 1 && !strcmp(t->name, m->inputs[1].name)));
        int64_t b;
        if (data && (!tensor_bytes(t, n, &b) || !mul64(b, 2, &b) || !add64(*out, b, out)))
            return false;
    }
    return true;
}

bool rt_mem_need(const RtMemRun *r, int64_t n, RtMemNeed *out) {
    memset(out, 0, sizeof *out);
    if (n < 1)
        n = 1;
    /* the trainer binds min(batch, samples) split over the ranks, rounded up (open_step in train.c) */
    int64_t local = n < r->ntrain ? n : r->ntrain;
    local = (local + r->ranks - 1) / r->ranks;
    if (local < 1)
        local = 1;
    int64_t *p = out->part;
    if (!binding_bytes(r->step, local, &p[RT_MEM_ARENA], &p[RT_MEM_BATCH], &p[RT_MEM_GRADS]) ||
        !loader_bytes(r->m, r->step, local, &p[RT_MEM_LOADER]))
        return false;
    if (r->ranks > 1 && !add64(p[RT_MEM_GRADS], p[RT_MEM_GRADS] + 64, &p[RT_MEM_GRADS]))
        return false; /* the gradients' buckets (dist.c) beside the step's own outputs */
    if (r->eval) {
        int64_t en = n < r->neval ? n : r->neval, arena = 0, io = 0;
        if (!binding_bytes(r->eval, en, &arena, &io, NULL) || !add64(arena, io, &p[RT_MEM_EVAL]))
            return false;
    }
    p[RT_MEM_PARAMS] = r->params;
    p[RT_MEM_OPTIM] = r->optim;
    p[RT_MEM_DATA] = r->data;
    for (int i = 0; i < RT_MEM_NPARTS; i++)
        if (!add64(out->total, p[i], &out->total))
            return false;
    out->held = r->held;
    return true;
}

int64_t rt_mem_largest(RtMemCost cost, const void *ctx, int64_t avail, int64_t cap) {
    int64_t b;
    if (cap < 1 || !cost(ctx, 1, &b) || b > avail)
        return 0;
    if (cost(ctx, cap, &b) && b <= avail)
        return cap;
    int64_t lo = 1, hi = cap; /* lo fits, hi does not */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cost(ctx, mid, &b) && b <= avail)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

void rt_mem_text(int64_t bytes, char *buf, size_t n) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (bytes < 1024) {
        snprintf(buf, n, "%lld B", (long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f %s", v, units[u]);
}

/* ---------------------------------------------------------------- the check */

static bool run_cost(const void *ctx, int64_t n, int64_t *bytes) {
    RtMemNeed need;
    if (!rt_mem_need(ctx, n, &need))
        return false;
    *bytes = need.total;
    return true;
}

/* "train-step arena 3.1 GiB, batch inputs and outputs 20.0 MiB, ..." (the parts that are not 0). */
static void parts_text(const RtMemNeed *need, char *buf, size_t n) {
    static const char *const names[RT_MEM_NPARTS] = {
        [RT_MEM_ARENA] = "train-step arena", [RT_MEM_BATCH] = "batch inputs and outputs",
        [RT_MEM_GRADS] = "gradients", [RT_MEM_LOADER] = "loader buffers", [RT_MEM_EVAL] = "evaluation",
        [RT_MEM_PARAMS] = "parameters", [RT_MEM_OPTIM] = "optimizer state", [RT_MEM_DATA] = "data sets"};
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < RT_MEM_NPARTS && used < n; i++) {
        if (!need->part[i])
            continue;
        char t[32];
        rt_mem_text(need->part[i], t, sizeof t);
        used += (size_t)snprintf(buf + used, n - used, "%s%s %s", used ? ", " : "", names[i], t);
    }
}

/* "1.5 GiB (LATHE_MEMORY_LIMIT)" or "1.5 GiB (MemAvailable in /proc/meminfo, 1.2 GiB, plus 300.0 MiB this run
   holds already)": what the run can have, and where the figure comes from. */
static void avail_text(const RtMemAvail *a, int64_t held, int64_t have, char *buf, size_t n) {
    char h[32], free_[32], held_[32];
    rt_mem_text(have, h, sizeof h);
    if (a->cap) {
        snprintf(buf, n, "%s (%lld bytes, from %s)", h, (long long)have, a->source);
        return;
    }
    rt_mem_text(a->bytes, free_, sizeof free_);
    rt_mem_text(held, held_, sizeof held_);
    snprintf(buf, n, "%s (%lld bytes: %s, %s, plus the %s this run holds already)", h, (long long)have, a->source,
             free_, held_);
}

/* Under mpirun every process must train at the same batch: the smallest of the processes' choices. */
static int agree_on_batch(int64_t *batch, RtErr *e) {
    if (!rt_dist_on())
        return RT_OK;
    double *v = calloc((size_t)rt_dist.size, sizeof *v);
    if (!v)
        return rt_errf(e, "out of memory");
    v[rt_dist.rank] = (double)*batch;
    int rc = rt_dist_allreduce(v, rt_dist.size, RT_DIST_F64, e);
    for (int i = 0; rc == RT_OK && i < rt_dist.size; i++)
        if (v[i] < (double)*batch)
            *batch = (int64_t)v[i];
    free(v);
    return rc;
}

static int nothing_fits(const RtMemRun *run, const char *avail, RtErr *e) {
    RtMemNeed need;
    char parts[512], t[32];
    if (!rt_mem_need(run, 1, &need))
        return rt_errf(e, "not enough memory to train: the run's memory passes 2^63 bytes even at batch 1");
    parts_text(&need, parts, sizeof parts);
    rt_mem_text(need.total, t, sizeof t);
    return rt_errf(e, "not enough memory to train, even at batch 1: the run needs %s (%lld bytes: %s), but %s is "
                   "available; free memory, or train a smaller model or on a smaller data set",
                   t, (long long)need.total, parts, avail);
}

static int batch_auto(const RtMemRun *run, RtConfig *cfg, const RtMemAvail *a, int64_t have, FILE *out, RtErr *e) {
    int64_t recipe = cfg->batch, cap, train = run->ntrain > 0 ? run->ntrain : 1;
    if (!mul64(recipe, RT_BATCH_AUTO_FACTOR, &cap))
        cap = INT64_MAX;
    bool by_data = train < cap;
    if (by_data)
        cap = train;
    char why[1024], avail[700];
    int64_t best = cap;
    if (a->bytes < 0) {
        best = recipe < cap ? recipe : cap;
        snprintf(why, sizeof why, "the memory there is could not be read (/proc/meminfo, the cgroup's limit): the "
                 "recipe's batch");
    } else {
        RtMemNeed need;
        rt_mem_need(run, 1, &need);
        avail_text(a, need.held, have, avail, sizeof avail);
        if ((best = rt_mem_largest(run_cost, run, have, cap)) == 0)
            return nothing_fits(run, avail, e);
        snprintf(why, sizeof why, "the largest that fits in %s; at most %lld, %s", avail, (long long)cap,
                 by_data ? "the training samples" : "64 times the recipe's batch");
    }
    if (agree_on_batch(&best, e) != RT_OK)
        return RT_ERR;
    cfg->batch = best;
    if (out) {
        fprintf(out, "Batch: %lld (--batch auto: %s)\n", (long long)best, why);
        fflush(out);
    }
    return RT_OK;
}

int rt_mem_check_train(const RtManifest *m, RtConfig *cfg, const RtMemData *d, FILE *out, RtErr *e) {
    RtMemAvail a;
    RtMemRun run;
    if (rt_mem_available(&a, e) != RT_OK || rt_mem_run_init(&run, m, cfg, d, e) != RT_OK)
        return RT_ERR;
    RtMemNeed need;
    if (!rt_mem_need(&run, cfg->batch, &need) && !cfg->batch_auto)
        return rt_errf(e, "not enough memory to train at batch %lld: the run's memory passes 2^63 bytes",
                       (long long)cfg->batch);
    /* what the run can have: a cap is for all of it; free memory is beside what it holds already */
    int64_t have = a.bytes;
    if (!a.cap && a.bytes >= 0 && !add64(a.bytes, need.held, &have))
        have = INT64_MAX;
    if (cfg->batch_auto)
        return batch_auto(&run, cfg, &a, have, out, e);
    if (a.bytes < 0 || need.total <= have)
        return RT_OK;
    char parts[512], t[32], avail[700];
    avail_text(&a, need.held, have, avail, sizeof avail);
    int64_t best = rt_mem_largest(run_cost, &run, have, cfg->batch - 1);
    if (best == 0)
        return nothing_fits(&run, avail, e);
    parts_text(&need, parts, sizeof parts);
    rt_mem_text(need.total, t, sizeof t);
    return rt_errf(e, "not enough memory to train at batch %lld: the run needs %s (%lld bytes%s: %s), but %s is "
                   "available; the largest batch that fits is %lld (--batch %lld, or --batch auto)",
                   (long long)cfg->batch, t, (long long)need.total, run.ranks > 1 ? " in each process" : "", parts,
                   avail, (long long)best, (long long)best);
}

/* ---------------------------------------------------------------- info */

typedef struct PlanCtx {
    const RtManifest *m;
    const json_t *recipe;
} PlanCtx;

static bool plan_cost(const void *ctx, int64_t n, int64_t *bytes) {
    const PlanCtx *p = ctx;
    RtPeak pk;
    RtErr ignored;
    if (rt_plan_peak(p->m, p->recipe, n, &pk, &ignored) != RT_OK)
        return false;
    *bytes = pk.total;
    return true;
}

void rt_mem_info(FILE *f, const RtManifest *m, const json_t *recipe) {
    RtMemAvail a;
    RtErr e;
    if (rt_mem_available(&a, &e) != RT_OK) {
        fprintf(f, "memory available: unknown (%s)\n", e.msg);
        return;
    }
    if (a.bytes < 0) {
        fprintf(f, "memory available: unknown (no /proc/meminfo or cgroup limit could be read)\n");
        return;
    }
    char t[32];
    rt_mem_text(a.bytes, t, sizeof t);
    fprintf(f, "memory available: %lld bytes (%s, %s)\n", (long long)a.bytes, t, a.source);
    PlanCtx ctx = {m, recipe};
    int64_t one;
    if (!plan_cost(&ctx, 1, &one))
        return; /* no memory plan in the manifest */
    int64_t best = rt_mem_largest(plan_cost, &ctx, a.bytes, (int64_t)1 << 40);
    if (best > 0)
        fprintf(f, "largest batch whose train step fits: %lld (train also counts the data, the loader and the "
                   "evaluation, and checks before its first step)\n", (long long)best);
    else
        fprintf(f, "the train step does not fit even at batch 1\n");
}
