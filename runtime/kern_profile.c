/* kern_profile.c: the timed kernel call that graph entries make while lathe_profile_on is set
   (lathe_kern.h). It only measures; what the times become (a trace, a table) is runtime/profile.c's, which
   sets the sink. Here, rather than in profile.c, because the tests' JIT links the kernels alone. */
#include "lathe_kern.h"

#include <time.h>

int lathe_profile_on;
void (*lathe_profile_sink)(int32_t graph, int32_t node, int64_t n, int64_t start_ns, int64_t end_ns);

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lathe_profile_kernel(int32_t graph, int32_t node, lathe_kernel_fn k, uint8_t **bufs, int64_t n, int64_t count,
                          int64_t cost) {
    int64_t start = now_ns();
    lathe_run_kernel(k, bufs, n, count, cost);
    int64_t end = now_ns();
    void (*sink)(int32_t, int32_t, int64_t, int64_t, int64_t) = lathe_profile_sink;
    if (sink)
        sink(graph, node, n, start, end);
}
