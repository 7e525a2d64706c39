/* kern_pool.c: the thread pool of lathe_kern.h. (Serial placeholder: ranges run one after another on the
   caller.) */
#include "lathe_kern.h"

static int test_parts;

static void run_ranges(int64_t count, void (*call)(void *, int64_t, int64_t), void *ctx) {
    int64_t parts = test_parts > 0 && count >= 2 ? (test_parts < count ? test_parts : count) : 1;
    for (int64_t i = 0; i < parts; i++)
        call(ctx, count * i / parts, count * (i + 1) / parts);
}

typedef struct KernelCall {
    lathe_kernel_fn k;
    uint8_t **bufs;
    int64_t n;
} KernelCall;

static void kernel_range(void *ctx, int64_t lo, int64_t hi) {
    KernelCall *c = ctx;
    c->k(c->bufs, c->n, lo, hi);
}

void lathe_run_kernel(lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count, int64_t cost) {
    (void)cost;
    KernelCall c = {k, bufs, n};
    if (count > 0)
        run_ranges(count, kernel_range, &c);
}

void lathe_parallel_for(int64_t count, int64_t cost, lathe_range_fn fn, void *ctx) {
    (void)cost;
    if (count > 0)
        run_ranges(count, fn, ctx);
}

void lathe_pool_init(int threads) {
    (void)threads;
}

int lathe_pool_threads(void) {
    return 1;
}

int lathe_pool_thread_index(void) {
    return 0;
}

void lathe_pool_test_split(int parts) {
    test_parts = parts;
}
