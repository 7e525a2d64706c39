/* test_cuda_exec.c: the executor of a CUDA launch plan (runtime/cuda_exec.c) on a fake driver whose
   "kernels" are C functions over host memory: the arguments copied in, each buffer's address (argument or
   arena + c + per_n * n), the grids, the copies, what is copied back, the buffers grown with n, and the
   messages of a bad plan and of a failing driver. */
#include "support.h"

#include "cuda.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { MAX_LOG = 64 };

typedef struct Fake {
    int allocs, releases, live;
    int to_host_args[MAX_LOG], nto_host; /* which host buffers came back, by their index in host[] */
    void **host;
    int nhost;
    unsigned grids[MAX_LOG], blocks[MAX_LOG];
    int nlaunches;
    const char *fail_launch; /* a kernel whose launch fails */
    size_t fail_alloc_above; /* an allocation above this many bytes fails (0: none) */
    char err[128];
} Fake;

static int fake_alloc(void *ctx, size_t bytes, uint64_t *dptr) {
    Fake *f = ctx;
    if (f->fail_alloc_above && bytes > f->fail_alloc_above) {
        snprintf(f->err, sizeof f->err, "out of device memory");
        return 1;
    }
    void *p = malloc(bytes);
    assert_non_null(p);
    memset(p, 0xab, bytes);
    f->allocs++;
    f->live++;
    *dptr = (uint64_t)(uintptr_t)p;
    return 0;
}

static void fake_release(void *ctx, uint64_t dptr) {
    Fake *f = ctx;
    f->releases++;
    f->live--;
    free((void *)(uintptr_t)dptr);
}

static int fake_to_device(void *ctx, uint64_t dst, const void *src, size_t bytes) {
    memcpy((void *)(uintptr_t)dst, src, bytes);
    return 0;
}

static int fake_to_host(void *ctx, void *dst, uint64_t src, size_t bytes) {
    Fake *f = ctx;
    for (int i = 0; i < f->nhost; i++)
        if (f->host[i] == dst && f->nto_host < MAX_LOG)
            f->to_host_args[f->nto_host++] = i;
    memcpy(dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

static int fake_copy(void *ctx, uint64_t dst, uint64_t src, size_t bytes) {
    memmove((void *)(uintptr_t)dst, (const void *)(uintptr_t)src, bytes);
    return 0;
}

static float *fp(void **params, int i) {
    return (float *)(uintptr_t) * (uint64_t *)params[i];
}

/* scale: b0[i] = 2 * b1[i] over [n, 8]; add: b0[i] = b1[i] + b2[i % 8]; bump: b0[i] = b1[i] + 1 over [4] */
static int fake_launch(void *ctx, const char *name, unsigned grid, unsigned block, void **params) {
    Fake *f = ctx;
    if (f->fail_launch && strcmp(name, f->fail_launch) == 0) {
        snprintf(f->err, sizeof f->err, "an illegal memory access was encountered");
        return 1;
    }
    if (f->nlaunches < MAX_LOG) {
        f->grids[f->nlaunches] = grid;
        f->blocks[f->nlaunches++] = block;
    }
    if (strcmp(name, "scale") == 0) {
        long long n = *(long long *)params[2];
        for (long long i = 0; i < n * 8; i++)
            fp(params, 0)[i] = 2 * fp(params, 1)[i];
    } else if (strcmp(name, "add") == 0) {
        long long n = *(long long *)params[3];
        for (long long i = 0; i < n * 8; i++)
            fp(params, 0)[i] = fp(params, 1)[i] + fp(params, 2)[i % 8];
    } else if (strcmp(name, "bump") == 0) {
        for (int i = 0; i < 4; i++)
            fp(params, 0)[i] = fp(params, 1)[i] + 1;
    } else {
        snprintf(f->err, sizeof f->err, "named symbol not found");
        return 1;
    }
    return 0;
}

static int fake_sync(void *ctx) {
    return 0;
}

static const char *fake_error(void *ctx) {
    return ((Fake *)ctx)->err;
}

static RtCudaDriver fake_driver(Fake *f) {
    memset(f, 0, sizeof *f);
    return (RtCudaDriver){f, fake_alloc, fake_release, fake_to_device, fake_to_host, fake_copy, fake_launch,
                          fake_sync, fake_error};
}

/* train(x f32[N,8], w f32[8], out f32[N,8]) with an arena of 16 + 32n bytes: t = 2x at arena + 16; out = t + w;
   the arena's first 16 bytes = w[0:4] + 1, copied into w[0:4] (an update) */
static const char *plan =
    "{\"graphs\": {\"train\": {\"nargs\": 3, \"arena\": [16, 32],"
    " \"launches\": ["
    "  {\"name\": \"scale\", \"node\": 4, \"block\": 128, \"items\": [8, 1], \"per_block\": 256, \"nouts\": 1,"
    "   \"bufs\": [{\"arena\": [16, 0]}, {\"arg\": 0}]},"
    "  {\"name\": \"add\", \"node\": 5, \"block\": 64, \"items\": [8, 1], \"per_block\": 4, \"nouts\": 1,"
    "   \"bufs\": [{\"arg\": 2}, {\"arena\": [16, 0]}, {\"arg\": 1}]},"
    "  {\"name\": \"bump\", \"node\": 6, \"block\": 32, \"items\": [4, 0], \"per_block\": 1, \"nouts\": 1,"
    "   \"bufs\": [{\"arena\": [0, 0]}, {\"arg\": 1}]}],"
    " \"copies\": [{\"dst\": {\"arg\": 1}, \"src\": {\"arena\": [0, 0]}, \"bytes\": [16, 0]}]},"
    " \"eval\": {\"nargs\": 2, \"arena\": [0, 0], \"launches\": [], \"copies\": []}}}";

typedef struct Args {
    float x[8 * 8], w[8], out[8 * 8];
    void *ptr[3];
    size_t sizes[3];
} Args;

static void args_init(Args *a, int64_t n) {
    for (int i = 0; i < 64; i++)
        a->x[i] = (float)i;
    for (int i = 0; i < 8; i++)
        a->w[i] = (float)(100 * i);
    memset(a->out, 0, sizeof a->out);
    a->ptr[0] = a->x, a->ptr[1] = a->w, a->ptr[2] = a->out;
    a->sizes[0] = a->sizes[2] = (size_t)n * 8 * sizeof(float);
    a->sizes[1] = sizeof a->w;
}

static void run_ok(RtCudaExec *x, Args *a, int64_t n) {
    RtErr e = {{0}};
    args_init(a, n);
    if (rt_cuda_exec_run(x, "train", a->ptr, a->sizes, n, &e) != RT_OK)
        fail_msg("run failed: %s", e.msg);
    for (int i = 0; i < n * 8; i++)
        assert_true(a->out[i] == 2.0f * (float)i + (float)(100 * (i % 8)));
    for (int i = 0; i < 8; i++)
        assert_true(a->w[i] == (float)(100 * i) + (i < 4 ? 1.0f : 0.0f));
}

static void test_exec_runs_launches_and_copies(void **state) {
    Fake f;
    RtCudaDriver drv = fake_driver(&f);
    RtErr e = {{0}};
    RtCudaExec *x = rt_cuda_exec_new(plan, &drv, &e);
    if (!x)
        fail_msg("plan refused: %s", e.msg);
    Args a;
    f.host = a.ptr;
    f.nhost = 3;
    run_ok(x, &a, 3);
    /* grid = ceil(items / per_block): 24/256 -> 1, 24/4 -> 6, 4/1 -> 4; the blocks as planned */
    assert_int_equal(f.nlaunches, 3);
    assert_int_equal(f.grids[0], 1);
    assert_int_equal(f.grids[1], 6);
    assert_int_equal(f.grids[2], 4);
    assert_int_equal(f.blocks[0], 128);
    assert_int_equal(f.blocks[1], 64);
    /* only the written arguments come back: w (the copy's destination) and out, not the input x */
    assert_int_equal(f.nto_host, 2);
    assert_int_equal(f.to_host_args[0], 1);
    assert_int_equal(f.to_host_args[1], 2);
    rt_cuda_exec_free(x);
    assert_int_equal(f.live, 0);
}

static void test_exec_grows_buffers_with_n(void **state) {
    Fake f;
    RtCudaDriver drv = fake_driver(&f);
    RtErr e = {{0}};
    RtCudaExec *x = rt_cuda_exec_new(plan, &drv, &e);
    assert_non_null(x);
    Args a;
    run_ok(x, &a, 2);
    assert_int_equal(f.allocs, 4); /* the arena and three arguments */
    run_ok(x, &a, 1);
    assert_int_equal(f.allocs, 4); /* a smaller n reuses them */
    run_ok(x, &a, 8);
    assert_int_equal(f.allocs, 7); /* the arena, x and out grow; w keeps its buffer */
    assert_int_equal(f.releases, 3);
    run_ok(x, &a, 1);
    assert_int_equal(f.allocs, 7);
    rt_cuda_exec_free(x);
    assert_int_equal(f.live, 0);
}

static void expect_plan_error(const char *text, const char *part) {
    Fake f;
    RtCudaDriver drv = fake_driver(&f);
    RtErr e = {{0}};
    assert_null(rt_cuda_exec_new(text, &drv, &e));
    if (!strstr(e.msg, part))
        fail_msg("plan %s: message '%s' does not contain '%s'", text, e.msg, part);
    assert_int_equal(f.live, 0);
}

static void test_exec_rejects_bad_plans(void **state) {
    expect_plan_error("{\"graphs\": ", "CUDA plan: line 1");
    expect_plan_error("[]", "no \"graphs\" object");
    expect_plan_error("{\"graphs\": {\"train\": {\"arena\": [0, 0], \"launches\": []}}}",
                      "graph 'train' lacks nargs");
    expect_plan_error("{\"graphs\": {\"train\": {\"nargs\": 1, \"arena\": [0, 0], \"launches\": ["
                      "{\"name\": \"k\", \"block\": 64, \"items\": [1, 0], \"per_block\": 64, \"bufs\": [{\"arg\": 1}]}]}}}",
                      "graph 'train': launch 0: argument 1 out of range (the graph has 1)");
    expect_plan_error("{\"graphs\": {\"train\": {\"nargs\": 1, \"arena\": [0, 0], \"launches\": ["
                      "{\"name\": \"k\", \"block\": 2048, \"items\": [1, 0], \"per_block\": 64, \"bufs\": []}]}}}",
                      "kernel k: block 2048");
    expect_plan_error("{\"graphs\": {\"train\": {\"nargs\": 1, \"arena\": [0, 0], \"launches\": ["
                      "{\"name\": \"k\", \"block\": 64, \"items\": [1, 0], \"per_block\": 64, \"bufs\": [{\"arena\": -1}]}]}}}",
                      "launch 0: a buffer is neither");
    expect_plan_error("{\"graphs\": {\"train\": {\"nargs\": 1, \"arena\": [0, 0], \"launches\": [],"
                      " \"copies\": [{\"dst\": {\"arg\": 0}, \"src\": {\"arg\": 0}}]}}}",
                      "graph 'train': copy 0 lacks bytes");
}

static void expect_run_error(Fake *f, RtCudaDriver *drv, const char *graph, const char *part) {
    RtErr e = {{0}};
    RtCudaExec *x = rt_cuda_exec_new(plan, drv, &e);
    assert_non_null(x);
    Args a;
    args_init(&a, 2);
    assert_int_equal(rt_cuda_exec_run(x, graph, a.ptr, a.sizes, 2, &e), RT_ERR);
    if (!strstr(e.msg, part))
        fail_msg("message '%s' does not contain '%s'", e.msg, part);
    rt_cuda_exec_free(x);
    assert_int_equal(f->live, 0);
}

static void test_exec_names_graph_kernel_and_driver_error(void **state) {
    Fake f;
    RtCudaDriver drv = fake_driver(&f);
    f.fail_launch = "add";
    expect_run_error(&f, &drv, "train",
                     "CUDA graph 'train': kernel add (node %5, grid 4, block 64): an illegal memory access");
    drv = fake_driver(&f);
    f.fail_alloc_above = 40;
    expect_run_error(&f, &drv, "train", "CUDA graph 'train': allocating 80 bytes for the arena: out of device memory");
    drv = fake_driver(&f);
    expect_run_error(&f, &drv, "predict", "CUDA plan: no graph 'predict'");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_runs_launches_and_copies),
        cmocka_unit_test(test_exec_grows_buffers_with_n),
        cmocka_unit_test(test_exec_rejects_bad_plans),
        cmocka_unit_test(test_exec_names_graph_kernel_and_driver_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
