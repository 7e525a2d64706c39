/* test_stats.c: what `lathe ir --stats` counts per graph (cli/stats.c): kernels one per fusion group, FLOPs
   as the nodes' sum, bytes moved with fused members moving nothing, and no peak before the memory plan. */
#include "support.h"

#include <string.h>

#include "../../cli/stats.h"

/* x [N,4,6] + b (broadcast) then relu, fused into one kernel: it reads x and b once and writes only y. */
static const char *const fused_text =
    "graph predict {\n"
    "  %0 = input \"x\" : f32[N,4,6]  # m.lathe:2:5\n"
    "  %1 = param \"b\" : f32[4,1]  # m.lathe:3:5\n"
    "  %2 = broadcast %1 : f32[N,4,6] in %4  # m.lathe:4:9\n"
    "  %3 = add %0, %2 : f32[N,4,6] in %4  # m.lathe:4:9\n"
    "  %4 = relu %3 : f32[N,4,6] in %4  # m.lathe:5:9\n"
    "  output \"y\" = %4\n"
    "}\n";

/* The same nodes unfused: three kernels, each writing its result and the next reading it. */
static const char *const plain_text =
    "graph predict {\n"
    "  %0 = input \"x\" : f32[N,4,6]  # m.lathe:2:5\n"
    "  %1 = param \"b\" : f32[4,1]  # m.lathe:3:5\n"
    "  %2 = broadcast %1 : f32[N,4,6]  # m.lathe:4:9\n"
    "  %3 = add %0, %2 : f32[N,4,6]  # m.lathe:4:9\n"
    "  %4 = relu %3 : f32[N,4,6]  # m.lathe:5:9\n"
    "  output \"y\" = %4\n"
    "}\n";

static void test_fused_group_is_one_kernel_moving_its_edges(void **state)
{
    Graph *g = ts_parse_graph("t.ir", fused_text);
    GraphStats s;
    stats_of_graph(g, 10, false, &s);
    assert_string_equal(s.name, "predict");
    assert_int_equal(s.nodes, 5);
    assert_int_equal(s.kernels, 1);
    assert_int_equal(s.flops, 2 * 240); /* add and relu, 1 per element; a broadcast computes nothing */
    assert_int_equal(s.bytes, 4 * (240 + 4 + 240)); /* x and b read, y written */
    assert_int_equal(s.peak, -1);
}

static void test_unfused_kernels_write_and_read_each_value(void **state)
{
    Graph *g = ts_parse_graph("t.ir", plain_text);
    GraphStats s;
    stats_of_graph(g, 10, false, &s);
    assert_int_equal(s.kernels, 3);
    assert_int_equal(s.flops, 2 * 240);
    /* broadcast: b in, 240 out; add: 240 + 240 in, 240 out; relu: 240 in, 240 out */
    assert_int_equal(s.bytes, 4 * ((4 + 240) + (480 + 240) + (240 + 240)));
}

#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_fused_group_is_one_kernel_moving_its_edges),
        T(test_unfused_kernels_write_and_read_each_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
