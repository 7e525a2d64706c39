/* budget.c: the readers' budget of bytes for one load (budget.h). The open load is per thread, so that a
   loader thread's allocations never count against the main thread's load. */
#include "budget.h"
#include "memcheck.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local RtBudget *open_load;

static void *json_counted_malloc(size_t n);

static void install_json_counting(void) { json_set_alloc_funcs(json_counted_malloc, free); }

int rt_budget_begin(RtBudget *b, const char *what, RtErr *e) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    memset(b, 0, sizeof *b);
    b->what = what;
    b->limit = -1;
    if (open_load) {
        b->joined = true;
        return RT_OK;
    }
    const char *env = getenv(RT_READ_LIMIT_ENV);
    if (env) {
        if (rt_mem_parse_bytes(env, &b->limit) != RT_OK)
            return rt_errf(e, "%s=%.40s: expected a byte count, such as 2000000000, 512M or 8G", RT_READ_LIMIT_ENV,
                           env);
        snprintf(b->source, sizeof b->source, "%s", RT_READ_LIMIT_ENV);
    } else {
        RtMemAvail a;
        if (rt_mem_available(&a, e) != RT_OK)
            return RT_ERR;
        b->limit = a.bytes;
        snprintf(b->source, sizeof b->source, "the memory there is: %.200s; %s sets another", a.source,
                 RT_READ_LIMIT_ENV);
    }
    pthread_once(&once, install_json_counting);
    open_load = b;
    return RT_OK;
}

void rt_budget_end(RtBudget *b) {
    if (!b->joined && open_load == b)
        open_load = NULL;
}

static bool over(const RtBudget *b, int64_t n) {
    return b->limit >= 0 && (n > b->limit || b->held > b->limit - n);
}

static int over_message(const RtBudget *b, int64_t n, const char *path, const char *what, RtErr *e) {
    return rt_errf(e, "%s: reading %s needs %lld more bytes, past the %s's read budget of %lld bytes (%s), of "
                   "which %lld are already allocated", path, what, (long long)n, b->what, (long long)b->limit,
                   b->source, (long long)b->held);
}

int rt_budget_take(int64_t n, const char *path, const char *what, RtErr *e) {
    RtBudget *b = open_load;
    if (!b || n <= 0)
        return RT_OK;
    if (over(b, n))
        return over_message(b, n, path, what, e);
    b->held += n;
    return RT_OK;
}

void rt_budget_give(int64_t n) {
    if (open_load && n > 0)
        open_load->held = open_load->held > n ? open_load->held - n : 0;
}

void *rt_budget_malloc(size_t n, const char *path, const char *what, RtErr *e) {
    if (n > INT64_MAX || rt_budget_take((int64_t)n, path, what, e) != RT_OK)
        return NULL;
    void *p = malloc(n ? n : 1);
    if (!p) {
        rt_budget_give((int64_t)n);
        rt_errf(e, "%s: out of memory for %s (%lld bytes)", path, what, (long long)n);
    }
    return p;
}

void *rt_budget_calloc(size_t k, size_t n, const char *path, const char *what, RtErr *e) {
    size_t bytes;
    if (__builtin_mul_overflow(k, n, &bytes)) {
        rt_errf(e, "%s: %s: the size overflows", path, what);
        return NULL;
    }
    void *p = rt_budget_malloc(bytes, path, what, e);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void *rt_budget_realloc(void *p, size_t old, size_t n, const char *path, const char *what, RtErr *e) {
    int64_t more = n > old ? (int64_t)(n - old) : 0;
    if (n > INT64_MAX || rt_budget_take(more, path, what, e) != RT_OK)
        return NULL;
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        rt_budget_give(more);
        rt_errf(e, "%s: out of memory for %s (%lld bytes)", path, what, (long long)n);
        return NULL;
    }
    if (n < old)
        rt_budget_give((int64_t)(old - n));
    return q;
}

/* ---------------------------------------------------------------- jansson */

static void *json_counted_malloc(size_t n) {
    RtBudget *b = open_load;
    if (b && n <= INT64_MAX) {
        if (over(b, (int64_t)n)) {
            b->refused = (int64_t)n;
            return NULL;
        }
        b->held += (int64_t)n;
    }
    return malloc(n);
}

int rt_budget_refused(const char *path, const char *what, RtErr *e) {
    RtBudget *b = open_load;
    if (!b || !b->refused)
        return RT_OK;
    int64_t n = b->refused;
    b->refused = 0;
    return over_message(b, n, path, what, e);
}
