/* test_fe_parser.c: the parser. The AST shape of small inputs: precedence and associativity, postfix
   chains, lists, declarations with their members, parameters and types, train blocks; and the limits
   that keep recursion bounded. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../frontend/fe.h"

static Module *parse(const char *text) { return parse_file(ts.a, ts.d, "t.lathe", text); }

/* The expression of `def f() { return TEXT }`. */
static Expr *parse_expr(const char *text) {
    Module *m = parse(arena_printf(ts.a, "def f() { return %s }", text));
    assert_non_null(m);
    assert_int_equal(m->ndecls, 1);
    assert_int_equal(m->decls[0].func->nbody, 1);
    return m->decls[0].func->body[0].value;
}

static void test_parse_mul_binds_tighter_than_add(void **state) {
    Expr *e = parse_expr("1 + 2 * 3");
    assert_int_equal(e->kind, E_BINARY);
    assert_int_equal(e->op, B_ADD);
    assert_int_equal(e->lhs->kind, E_INT);
    assert_int_equal(e->rhs->kind, E_BINARY);
    assert_int_equal(e->rhs->op, B_MUL);
}

static void test_parse_add_is_left_associative(void **state) {
    Expr *e = parse_expr("a - b - c");
    assert_int_equal(e->op, B_SUB);
    assert_int_equal(e->lhs->kind, E_BINARY);
    assert_string_equal(e->rhs->name, "c");
}

static void test_parse_power_is_right_associative_above_unary_minus(void **state) {
    Expr *e = parse_expr("-x ** 2 ** 3");
    assert_int_equal(e->kind, E_NEG);
    Expr *p = e->lhs;
    assert_int_equal(p->op, B_POW);
    assert_string_equal(p->lhs->name, "x");
    assert_int_equal(p->rhs->kind, E_BINARY);
    assert_int_equal(p->rhs->op, B_POW);
}

static void test_parse_comparison_is_lowest(void **state) {
    Expr *e = parse_expr("a + b == c @ d");
    assert_int_equal(e->op, B_EQ);
    assert_int_equal(e->lhs->op, B_ADD);
    assert_int_equal(e->rhs->op, B_MATMUL);
}

static void test_parse_binary_location_is_its_operator(void **state) {
    Expr *e = parse_expr("x @ w");
    assert_int_equal(e->loc.line, 1);
    assert_int_equal(e->loc.col, 20);
}

static void test_parse_postfix_chain(void **state) {
    Expr *e = parse_expr("f(a, k = 1).T[0]");
    assert_int_equal(e->kind, E_INDEX);
    assert_int_equal(e->rhs->kind, E_INT);
    Expr *t = e->lhs;
    assert_int_equal(t->kind, E_ATTR);
    assert_string_equal(t->name, "T");
    Expr *c = t->lhs;
    assert_int_equal(c->kind, E_CALL);
    assert_string_equal(c->lhs->name, "f");
    assert_int_equal(c->nitems, 2);
    assert_null(c->keys[0]);
    assert_string_equal(c->keys[1], "k");
}

static void test_parse_list_with_trailing_comma(void **state) {
    Expr *e = parse_expr("[1, 2.5, \"s\", true,]");
    assert_int_equal(e->kind, E_LIST);
    assert_int_equal(e->nitems, 4);
    assert_int_equal(e->items[1]->kind, E_FLOAT);
    assert_int_equal(e->items[2]->kind, E_STR);
    assert_int_equal(e->items[3]->kind, E_BOOL);
    assert_true(e->items[3]->bval);
}

static void test_parse_layer_members_and_types(void **state) {
    Module *m = parse("layer L(a: int, b: float = 0.5) {\n"
                      "  w = param f32[a, 3] init uniform(-1, 1)\n"
                      "  z = param i64[2]\n"
                      "  act = ReLU()\n"
                      "  forward(x: f32[N, a]) -> f32[N, 3] { h = x @ w\n return h }\n"
                      "}\n");
    assert_non_null(m);
    Decl *d = &m->decls[0];
    assert_int_equal(d->kind, D_LAYER);
    assert_string_equal(d->name, "L");
    assert_int_equal(d->nparams, 2);
    assert_int_equal(d->params[0].type->kind, TY_INT);
    assert_int_equal(d->params[1].type->kind, TY_FLOAT);
    assert_non_null(d->params[1].dflt);
    assert_int_equal(d->nmembers, 4);
    assert_int_equal(d->members[0].kind, M_PARAM);
    assert_int_equal(d->members[0].type->dtype, DT_F32);
    assert_int_equal(d->members[0].type->ndims, 2);
    assert_non_null(d->members[0].init);
    assert_null(d->members[1].init);
    assert_int_equal(d->members[1].type->dtype, DT_I64);
    assert_int_equal(d->members[2].kind, M_ASSIGN);
    assert_int_equal(d->members[3].kind, M_FORWARD);
    Func *f = d->members[3].forward;
    assert_int_equal(f->nparams, 1);
    assert_int_equal(f->params[0].type->ndims, 2);
    assert_string_equal(f->params[0].type->dims[0]->name, "N");
    assert_non_null(f->ret);
    assert_int_equal(f->nbody, 2);
    assert_int_equal(f->body[0].kind, S_ASSIGN);
    assert_int_equal(f->body[1].kind, S_RETURN);
}

static void test_parse_model_def_and_train(void **state) {
    Module *m = parse("model M { forward(x) { return x } }\n"
                      "def g(x, axis = -1) { return x }\n"
                      "train M { batch = 64\n lr = 1 / 255 }\n");
    assert_non_null(m);
    assert_int_equal(m->ndecls, 3);
    assert_int_equal(m->decls[0].kind, D_MODEL);
    assert_int_equal(m->decls[1].kind, D_DEF);
    assert_int_equal(m->decls[1].func->nparams, 2);
    assert_int_equal(m->decls[1].func->params[1].dflt->kind, E_NEG);
    Decl *t = &m->decls[2];
    assert_int_equal(t->kind, D_TRAIN);
    assert_string_equal(t->name, "M");
    assert_int_equal(t->nentries, 2);
    assert_string_equal(t->entries[1].key, "lr");
    assert_int_equal(t->entries[1].loc.line, 4);
    assert_int_equal(t->entries[1].value->op, B_DIV);
}

static void test_parse_missing_brace_reported_at_end(void **state) {
    assert_null(parse("model M {\n  a = 1\n"));
    assert_non_null(strstr(diag_first_message(ts.d), "expected '}'"));
    assert_int_equal(diag_first_loc(ts.d).line, 3);
}

static void test_parse_unknown_dtype(void **state) {
    assert_null(parse("model M { w = param f33[3] }"));
    assert_non_null(strstr(diag_first_message(ts.d), "unknown dtype 'f33'"));
    assert_int_equal(diag_first_loc(ts.d).col, 21);
}

static void test_parse_nesting_limit(void **state) {
    char *text = malloc(4000);
    strcpy(text, "def f() { return ");
    for (int i = 0; i < 1000; i++)
        strcat(text, "(");
    strcat(text, "1 }");
    assert_null(parse(text));
    assert_non_null(strstr(diag_first_message(ts.d), "nested too deeply"));
    free(text);
}

static void test_parse_long_chain_is_bounded(void **state) {
    size_t cap = 64 + 4 * 5000;
    char *text = malloc(cap);
    strcpy(text, "def f() { return 1");
    for (int i = 0; i < 5000; i++)
        strcat(text, " + 1");
    strcat(text, " }");
    assert_null(parse(text));
    assert_non_null(strstr(diag_first_message(ts.d), "nested too deeply"));
    free(text);
}

static void test_parse_duplicate_member(void **state) {
    assert_null(parse("model M {\n a = 1\n a = 2\n}"));
    assert_non_null(strstr(diag_first_message(ts.d), "duplicate member 'a'"));
    assert_int_equal(diag_first_loc(ts.d).line, 3);
    assert_int_equal(diag_first_loc(ts.d).col, 2);
}

/* Duplicates are looked for among the keywords only, which follow every positional argument. */
static void test_parse_duplicate_keyword_after_positionals(void **state) {
    assert_null(parse("def f() { return g(1, 2, a = 1, b = 2, a = 3) }"));
    assert_non_null(strstr(diag_first_message(ts.d), "keyword argument 'a' given twice"));
    assert_int_equal(diag_first_loc(ts.d).col, 40);
}

static void test_parse_keyword_count_is_bounded(void **state) {
    char *text = "def f() { return g(";
    for (int i = 0; i <= FE_MAX_NAMES; i++)
        text = arena_printf(ts.a, "%sk%d = 1, ", text, i);
    assert_null(parse(arena_printf(ts.a, "%s) }", text)));
    assert_non_null(strstr(diag_first_message(ts.d), "more than 4096 keyword arguments"));
}

static void test_parse_logic_binds_looser_than_comparison(void **state) {
    Expr *e = parse_expr("not a == b and c or d");
    assert_int_equal(e->kind, E_OR);
    assert_int_equal(e->lhs->kind, E_AND);
    assert_int_equal(e->lhs->lhs->kind, E_NOT);
    assert_int_equal(e->lhs->lhs->lhs->op, B_EQ);
    assert_string_equal(e->rhs->name, "d");
    assert_int_equal(parse_expr("none")->kind, E_NONE);
}

static void test_parse_comprehension(void **state) {
    Expr *e = parse_expr("[f(i) for i in range(3)]");
    assert_int_equal(e->kind, E_COMP);
    assert_string_equal(e->name, "i");
    assert_int_equal(e->lhs->kind, E_CALL);
    assert_int_equal(e->rhs->kind, E_CALL);
}

static void test_parse_index_items_slices_and_ellipsis(void **state) {
    Expr *e = parse_expr("x[..., 1:, ::2, -1]");
    assert_int_equal(e->kind, E_INDEX);
    assert_int_equal(e->nitems, 4);
    assert_int_equal(e->items[0]->kind, E_ELLIPSIS);
    Expr *s = e->items[1];
    assert_int_equal(s->kind, E_SLICE);
    assert_int_equal(s->items[0]->ival, 1);
    assert_null(s->items[1]);
    assert_null(s->items[2]);
    s = e->items[2];
    assert_null(s->items[0]);
    assert_null(s->items[1]);
    assert_int_equal(s->items[2]->ival, 2);
    assert_int_equal(e->items[3]->kind, E_NEG);
    assert_ptr_equal(e->rhs, e->items[0]);
}

static void test_parse_if_else_if_for_and_call_statements(void **state) {
    Module *m = parse("def f(x) {\n  if a { x = 1 } else if b { x = 2 } else { x = 3 }\n"
                      "  for i in xs { g(i) }\n  return x\n}");
    assert_non_null(m);
    Func *f = m->decls[0].func;
    assert_int_equal(f->nbody, 3);
    Stmt *s = &f->body[0];
    assert_int_equal(s->kind, S_IF);
    assert_int_equal(s->nbody, 1);
    assert_int_equal(s->norelse, 1);
    assert_int_equal(s->orelse[0].kind, S_IF);
    assert_int_equal(s->orelse[0].norelse, 1);
    assert_int_equal(s->orelse[0].orelse[0].kind, S_ASSIGN);
    s = &f->body[1];
    assert_int_equal(s->kind, S_FOR);
    assert_string_equal(s->name, "i");
    assert_int_equal(s->body[0].kind, S_EXPR);
    assert_int_equal(s->body[0].loc.line, 3);
}

/* `buffer` and `freeze` are keywords only where a member starts; `in` only after a loop variable. */
static void test_parse_member_forms_and_paths(void **state) {
    Module *m = parse("model M {\n  b = buffer i64[] init zeros()\n  buffer = 3\n  freeze layers.0.weight\n"
                      "  init fc.bias = ones()\n  if k { c = 1 } else { c = 2 }\n  forward(in) { return in }\n}");
    assert_non_null(m);
    Decl *d = &m->decls[0];
    assert_int_equal(d->nmembers, 6);
    assert_int_equal(d->members[0].kind, M_BUFFER);
    assert_int_equal(d->members[0].type->dtype, DT_I64);
    assert_int_equal(d->members[1].kind, M_ASSIGN);
    assert_string_equal(d->members[1].name, "buffer");
    Member *fr = &d->members[2];
    assert_int_equal(fr->kind, M_FREEZE);
    assert_int_equal(fr->npath, 3);
    assert_string_equal(fr->path[1], "0");
    assert_string_equal(fr->path[2], "weight");
    assert_int_equal(fr->path_locs[2].col, 19);
    assert_int_equal(d->members[3].kind, M_INIT);
    assert_int_equal(d->members[3].npath, 2);
    assert_int_equal(d->members[4].kind, M_IF);
    assert_int_equal(d->members[4].nmembers, 1);
    assert_int_equal(d->members[4].norelse, 1);
}

static void test_parse_expression_statement_must_be_a_call(void **state) {
    assert_null(parse("def f(x) {\n  x + 1\n  return x\n}"));
    assert_non_null(strstr(diag_first_message(ts.d), "a statement must be an assignment, a call"));
    assert_int_equal(diag_first_loc(ts.d).line, 2);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, ts_setup, ts_teardown)
    const struct CMUnitTest tests[] = {
        T(test_parse_mul_binds_tighter_than_add),
        T(test_parse_add_is_left_associative),
        T(test_parse_power_is_right_associative_above_unary_minus),
        T(test_parse_comparison_is_lowest),
        T(test_parse_binary_location_is_its_operator),
        T(test_parse_postfix_chain),
        T(test_parse_list_with_trailing_comma),
        T(test_parse_layer_members_and_types),
        T(test_parse_model_def_and_train),
        T(test_parse_missing_brace_reported_at_end),
        T(test_parse_unknown_dtype),
        T(test_parse_nesting_limit),
        T(test_parse_long_chain_is_bounded),
        T(test_parse_duplicate_member),
        T(test_parse_duplicate_keyword_after_positionals),
        T(test_parse_keyword_count_is_bounded),
        T(test_parse_logic_binds_looser_than_comparison),
        T(test_parse_comprehension),
        T(test_parse_index_items_slices_and_ellipsis),
        T(test_parse_if_else_if_for_and_call_statements),
        T(test_parse_member_forms_and_paths),
        T(test_parse_expression_statement_must_be_a_call),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
