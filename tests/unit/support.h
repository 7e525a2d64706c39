/* support.h: what the unit tests share, from support_*.c (linked into every test): one fixture of an arena,
   a Diag and a graph; shapes written inline; a seeded random stream; and short ways to read and compile a
   model, parse text IR and look into a graph, each failing the test with the first diagnostic. */
#ifndef LATHE_TESTS_UNIT_SUPPORT_H
#define LATHE_TESTS_UNIT_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "../../frontend/frontend.h"
#include "../../ir/ir.h"

/* The fixture of the running test. g is NULL unless ts_open named one. */
typedef struct TsFixture {
    Arena *a;
    Diag *d;
    Graph *g;
} TsFixture;

extern TsFixture ts;

/* A fresh arena and Diag (printing to diag_out, or recording only when it is NULL), and a graph named
   graph unless that is NULL. */
void ts_open(const char *graph, FILE *diag_out);
/* cmocka fixtures: ts_setup is ts_open(NULL, NULL); ts_teardown frees what ts_open made. */
int ts_setup(void **state);
int ts_teardown(void **state);

/* ts_shape(rank, dims...): ts_shape(0) is a scalar, ts_shape(2, IR_DIM_N, 4) is [N,4]. */
#define ts_shape(...) ts_shape_of((const int64_t[]){__VA_ARGS__})
Shape ts_shape_of(const int64_t *rank_then_dims);

/* s with every IR_DIM_N bound to n. */
Shape ts_shape_at(Shape s, int64_t n);

/* A 64-bit linear congruential stream (Knuth's MMIX constants); each caller keeps its own state so that
   its numbers do not depend on the tests before it. ts_rand_next advances the state and returns it. */
uint64_t ts_rand_next(uint64_t *state);
double ts_rand_uniform(uint64_t *state); /* in [0, 1), from the top 53 bits */

/* The text of models/NAME in the source tree, in ts.a. */
char *ts_read_model(const char *name);
/* fe_compile of text as file into ts.a and ts.d; a failure fails the test with the first error. */
Program *ts_compile_text(const char *file, const char *text);
/* ir_parse of text as file into ts.a and ts.d; anything but exactly one graph fails the test. */
Graph *ts_parse_graph(const char *file, const char *text);

/* What is written to c->f between ts_capture_open and ts_capture_close, which returns it in ts.a. */
typedef struct TsCapture {
    FILE *f;
    char *buf;
    size_t len;
} TsCapture;
FILE *ts_capture_open(TsCapture *c);
char *ts_capture_close(TsCapture *c);

/* The index of g's output named name, or -1. */
int ts_output_index(const Graph *g, const char *name);
/* Compiles text as m.lathe and checks that it fails with exactly one error containing msg at m.lathe:line:col. */
void ts_expect_compile_error(const char *text, const char *msg, int line, int col);
/* The program's parameter called name; fails the test when there is none. */
const ParamInfo *ts_param(const Program *p, const char *name);
/* How many nodes of g compute op. */
int ts_count_op(const Graph *g, Op op);
/* How many nodes of g have op and are still read by a node or an output (a pass leaves the dead to dce). */
int ts_count_used_op(const Graph *g, Op op);
/* Element i of a buffer of dtype t, as a double, and back (a value converted as C converts it). */
double ts_elem_get(const void *buf, DType t, int64_t i);
void ts_elem_put(void *buf, DType t, int64_t i, double v);
/* ts.g through the interpreter with N = n and every INPUT and PARAM (the first 16) bound to fixed
   pseudo-random values in [-0.5, 0.5); returns the outputs (fails the test on an interpreter error). */
ITensor *ts_interp_random(int64_t n);
/* Runs pass over ts.g, verifies it, and checks that every output keeps its shape and its values (to 1e-12,
   N = 2) against the interpreter before the pass. */
void ts_pass_keeps_values(bool (*pass)(Graph *g, Diag *d));

#endif
