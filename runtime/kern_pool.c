/* kern_pool.c: the thread pool of lathe_kern.h. (Serial placeholder: every range runs on the caller.) */
#include "lathe_kern.h"

void lathe_run_kernel(lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count, int64_t cost) {
    (void)cost;
    if (count > 0)
        k(bufs, n, 0, count);
}

void lathe_parallel_for(int64_t count, int64_t cost, lathe_range_fn fn, void *ctx) {
    (void)cost;
    if (count > 0)
        fn(ctx, 0, count);
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
