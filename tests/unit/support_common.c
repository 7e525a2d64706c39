/* support_common.c: the helpers of support.h. */
#include "support.h"

#include <math.h>

#include <stdlib.h>
#include <string.h>

TsFixture ts;

void ts_open(const char *graph, FILE *diag_out)
{
    memset(&ts, 0, sizeof ts);
    ts.a = arena_new();
    ts.d = diag_new(diag_out);
    if (graph)
        ts.g = ir_graph_new(ts.a, graph);
}

int ts_setup(void **state)
{
    (void)state;
    ts_open(NULL, NULL);
    return 0;
}

int ts_teardown(void **state)
{
    (void)state;
    diag_free(ts.d);
    arena_free(ts.a);
    memset(&ts, 0, sizeof ts);
    return 0;
}

Shape ts_shape_of(const int64_t *rank_then_dims)
{
    return ir_shape((int)rank_then_dims[0], rank_then_dims + 1);
}

Shape ts_shape_at(Shape s, int64_t n)
{
    for (int i = 0; i < s.rank; i++)
        if (s.dim[i] == IR_DIM_N)
            s.dim[i] = n;
    return s;
}

uint64_t ts_rand_next(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state;
}

double ts_rand_uniform(uint64_t *state)
{
    return (double)(ts_rand_next(state) >> 11) / 9007199254740992.0; /* 2^53 */
}

char *ts_read_model(const char *name)
{
    char *text = fe_read_file(ts.a, ts.d, arena_printf(ts.a, "%s/models/%s", LATHE_SOURCE_DIR, name), NULL);
    assert_non_null(text);
    return text;
}

Program *ts_compile_text(const char *file, const char *text)
{
    Program *p = fe_compile(ts.a, ts.d, file, text);
    if (!p)
        fail_msg("%s: %s", file, diag_first_message(ts.d));
    return p;
}

Graph *ts_parse_graph(const char *file, const char *text)
{
    Graph **gs;
    int n = ir_parse(ts.a, ts.d, file, text, &gs);
    if (n == 0)
        fail_msg("parse failed: %s", diag_first_message(ts.d));
    assert_int_equal(n, 1);
    return gs[0];
}

FILE *ts_capture_open(TsCapture *c)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    return c->f;
}

char *ts_capture_close(TsCapture *c)
{
    fclose(c->f);
    char *text = arena_strdup(ts.a, c->buf);
    free(c->buf);
    *c = (TsCapture){0};
    return text;
}

int ts_output_index(const Graph *g, const char *name)
{
    for (int i = 0; i < g->noutputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0)
            return i;
    return -1;
}

int ts_count_op(const Graph *g, Op op)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++)
        k += g->nodes[i]->op == op;
    return k;
}

double ts_elem_get(const void *buf, DType t, int64_t i)
{
    switch (t) {
    case DT_F32: return ((const float *)buf)[i];
    case DT_F64: return ((const double *)buf)[i];
    case DT_I32: return ((const int32_t *)buf)[i];
    case DT_I64: return (double)((const int64_t *)buf)[i];
    case DT_U8: return ((const uint8_t *)buf)[i];
    default: break;
    }
    fail_msg("bad dtype");
    return 0;
}

void ts_elem_put(void *buf, DType t, int64_t i, double v)
{
    switch (t) {
    case DT_F32: ((float *)buf)[i] = (float)v; break;
    case DT_F64: ((double *)buf)[i] = v; break;
    case DT_I32: ((int32_t *)buf)[i] = (int32_t)v; break;
    case DT_I64: ((int64_t *)buf)[i] = (int64_t)v; break;
    case DT_U8: ((uint8_t *)buf)[i] = (uint8_t)v; break;
    default: fail_msg("bad dtype");
    }
}

int ts_count_used_op(const Graph *g, Op op)
{
    int k = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const Node *n = g->nodes[i];
        bool used = false;
        for (int o = 0; o < g->noutputs; o++)
            used |= g->outputs[o].value == n;
        for (int j = 0; j < g->nnodes && !used; j++)
            for (int q = 0; q < g->nodes[j]->ninputs; q++)
                used |= g->nodes[j]->inputs[q] == n;
        k += used && n->op == op;
    }
    return k;
}

ITensor *ts_interp_random(int64_t n)
{
    IBinding b[16];
    int nb = 0;
    uint64_t r = 12345;
    for (int i = 0; i < ts.g->nnodes && nb < 16; i++) {
        Node *nd = ts.g->nodes[i];
        if (nd->op != OP_INPUT && nd->op != OP_PARAM)
            continue;
        ITensor t = {ts_shape_at(nd->shape, n), NULL};
        int64_t cnt = ir_shape_numel(&nd->shape, n);
        t.data = arena_alloc(ts.a, (size_t)cnt * sizeof(double) + 8);
        for (int64_t k = 0; k < cnt; k++)
            t.data[k] = (double)(ts_rand_next(&r) >> 40) / (double)(1 << 24) - 0.5;
        b[nb++] = (IBinding){nd->attr.name, t};
    }
    ITensor *out = ir_interp(ts.a, ts.g, n, b, nb, ts.d);
    assert_non_null(out);
    return out;
}

void ts_pass_keeps_values(bool (*pass)(Graph *g, Diag *d))
{
    ITensor *before = ts_interp_random(2);
    int nout = ts.g->noutputs;
    assert_true(pass(ts.g, ts.d));
    assert_true(ir_verify(ts.g, ts.d));
    assert_int_equal(ts.g->noutputs, nout);
    ITensor *after = ts_interp_random(2);
    for (int i = 0; i < nout; i++) {
        assert_true(ir_shape_eq(&before[i].shape, &after[i].shape));
        int64_t cnt = ir_shape_numel(&before[i].shape, 2);
        for (int64_t k = 0; k < cnt; k++)
            assert_true(fabs(before[i].data[k] - after[i].data[k]) < 1e-12);
    }
}

void ts_expect_compile_error(const char *text, const char *msg, int line, int col)
{
    Program *p = fe_compile(ts.a, ts.d, "m.lathe", text);
    if (p)
        fail_msg("compiled, expected an error containing \"%s\"", msg);
    assert_int_equal(diag_error_count(ts.d), 1);
    if (!strstr(diag_first_message(ts.d), msg))
        fail_msg("message \"%s\" lacks \"%s\"", diag_first_message(ts.d), msg);
    Loc loc = diag_first_loc(ts.d);
    assert_non_null(loc.file);
    assert_string_equal(loc.file, "m.lathe");
    if (loc.line != line || loc.col != col)
        fail_msg("\"%s\" at %d:%d, expected %d:%d", diag_first_message(ts.d), loc.line, loc.col, line, col);
}

const ParamInfo *ts_param(const Program *p, const char *name)
{
    for (int i = 0; i < p->nparams; i++)
        if (strcmp(p->params[i].name, name) == 0)
            return &p->params[i];
    fail_msg("no parameter %s", name);
    return NULL;
}
