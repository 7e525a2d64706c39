/* parse.c: the recursive-descent parser, one function per rule of the grammar written above it. It checks
   syntax and the names that must be unique within a declaration (members, parameters, train keys); what the
   names mean is the evaluator's business. */
#include <string.h>

#include "fe.h"

typedef struct Parser {
    Arena *a;
    Diag *d;
    const char *file;
    Token *tok; /* the current token */
    int depth;  /* expression nesting, bounded by FE_MAX_EXPR_DEPTH */
    bool failed;
} Parser;

/* Dynamic arrays in the arena: grows *items (of *n elements) by one slot and returns it. */
static void *grow(Parser *P, void *items, int n, size_t size) {
    /* n >= 0 counts items made from tokens, which the lexer bounds far below INT_MAX / 2 */
    size_t un = (size_t)n;
    if ((n & (n - 1)) == 0) /* a power of two (or 0): double */
        return arena_realloc(P->a, items, size * un, size * (un ? 2 * un : 1));
    return items;
}
#define APPEND(P, arr, n) ((arr) = grow(P, arr, n, sizeof *(arr)), &(arr)[(n)++])

static const char *tok_desc(Parser *P, const Token *t) {
    switch (t->kind) {
    case TK_EOF: return "end of file";
    case TK_STR: return "a string";
    case TK_INT:
    case TK_FLOAT: return arena_printf(P->a, "number '%s'", t->str);
    default: return arena_printf(P->a, "'%s'", t->str);
    }
}

static bool fail(Parser *P, Loc loc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(Parser *P, Loc loc, const char *fmt, ...) {
    if (!P->failed) {
        va_list ap;
        va_start(ap, fmt);
        diag_verror(P->d, loc, fmt, ap);
        va_end(ap);
    }
    P->failed = true;
    return false;
}

/* Room for the n+1-th name of a kind: duplicates are found pairwise, so the count is bounded to keep that
   quadratic work small whatever a file says. */
static bool room(Parser *P, int n, const char *what) {
    if (n < FE_MAX_NAMES)
        return true;
    return fail(P, P->tok->loc, "more than %d %s", FE_MAX_NAMES, what);
}

static bool consume(Parser *P, const char *s) {
    if (lex_is(P->tok, s)) {
        P->tok++;
        return true;
    }
    return false;
}

static bool expect(Parser *P, const char *s, const char *where) {
    if (consume(P, s))
        return true;
    return fail(P, P->tok->loc, "expected '%s'%s, found %s", s, where, tok_desc(P, P->tok));
}

static const char *ident(Parser *P, const char *what) {
    if (P->tok->kind == TK_IDENT)
        return (P->tok++)->str;
    if (P->tok->kind == TK_KEYWORD)
        fail(P, P->tok->loc, "expected %s, found keyword '%s'", what, P->tok->str);
    else
        fail(P, P->tok->loc, "expected %s, found %s", what, tok_desc(P, P->tok));
    return NULL;
}

static Expr *new_expr(Parser *P, ExprKind k, Loc loc) {
    Expr *e = arena_alloc(P->a, sizeof *e);
    e->kind = k;
    e->loc = loc;
    e->height = 1;
    return e;
}

static Expr *expr(Parser *P);
static Expr *bounded(Parser *P, Expr *e, const Expr *operand);

/* args := (arg ("," arg)* ","?)?    arg := (IDENT "=")? expr;  the "(" is consumed, ")" ends it */
static bool call_args(Parser *P, Expr *call) {
    int nkeys = 0;
    while (!lex_is(P->tok, ")")) {
        const char *key = NULL;
        Loc loc = P->tok->loc;
        if (P->tok->kind == TK_IDENT && lex_is(P->tok + 1, "=")) {
            if (!room(P, nkeys++, "keyword arguments in one call"))
                return false;
            key = P->tok->str;
            P->tok += 2;
            for (int i = call->nitems - (nkeys - 1); i < call->nitems; i++) /* the keywords come last */
                if (strcmp(call->keys[i], key) == 0)
                    return fail(P, loc, "keyword argument '%s' given twice", key);
        } else if (nkeys) {
            return fail(P, loc, "positional argument after a keyword argument");
        }
        Expr *arg = expr(P);
        if (!arg)
            return false;
        call->keys = grow(P, call->keys, call->nitems, sizeof *call->keys);
        call->keys[call->nitems] = key;
        *APPEND(P, call->items, call->nitems) = arg;
        if (!consume(P, ","))
            break;
    }
    return expect(P, ")", " to close the argument list");
}

/* The contextual keyword `in` (an identifier elsewhere: a parameter may be called in). */
static bool expect_in(Parser *P) {
    if (P->tok->kind == TK_IDENT && strcmp(P->tok->str, "in") == 0) {
        P->tok++;
        return true;
    }
    return fail(P, P->tok->loc, "expected 'in' after the loop variable, found %s", tok_desc(P, P->tok));
}

/* "[" item "for" IDENT "in" expr "]", with the "[" and the item parsed */
static Expr *comprehension(Parser *P, Expr *item, Loc loc) {
    Expr *e = new_expr(P, E_COMP, loc);
    e->lhs = item;
    P->tok++; /* for */
    if (!(e->name = ident(P, "a loop variable after 'for'")) || !expect_in(P) || !(e->rhs = expr(P)) ||
        !expect(P, "]", " to close the list comprehension"))
        return NULL;
    return bounded(P, bounded(P, e, item), e->rhs);
}

/* index_item := "..." | expr? ":" expr? (":" expr?)? | expr */
static Expr *index_item(Parser *P) {
    Token *t = P->tok;
    if (consume(P, "..."))
        return new_expr(P, E_ELLIPSIS, t->loc);
    Expr *start = NULL;
    if (!lex_is(t, ":") && !(start = expr(P)))
        return NULL;
    if (!consume(P, ":"))
        return start;
    Expr *e = new_expr(P, E_SLICE, start ? start->loc : t->loc);
    e->items = arena_alloc(P->a, sizeof *e->items * 3);
    e->nitems = 3;
    e->items[0] = start;
    for (int k = 1; k < 3; k++) {
        if (k == 2 && !consume(P, ":"))
            break;
        if (!lex_is(P->tok, ":") && !lex_is(P->tok, ",") && !lex_is(P->tok, "]") && !(e->items[k] = expr(P)))
            return NULL;
    }
    for (int k = 0; k < 3 && e; k++)
        e = bounded(P, e, e->items[k]);
    return e;
}

/* primary := INT | FLOAT | STR | "true" | "false" | "none" | IDENT | "(" expr ")"
             | "[" (expr ("," expr)* ","?)? "]" | "[" expr "for" IDENT "in" expr "]" */
static Expr *primary(Parser *P) {
    Token *t = P->tok;
    switch (t->kind) {
    case TK_INT: {
        Expr *e = new_expr(P, E_INT, t->loc);
        e->ival = t->ival;
        P->tok++;
        return e;
    }
    case TK_FLOAT: {
        Expr *e = new_expr(P, E_FLOAT, t->loc);
        e->fval = t->fval;
        P->tok++;
        return e;
    }
    case TK_STR: {
        Expr *e = new_expr(P, E_STR, t->loc);
        e->name = t->str;
        P->tok++;
        return e;
    }
    case TK_IDENT: {
        Expr *e = new_expr(P, E_IDENT, t->loc);
        e->name = t->str;
        P->tok++;
        return e;
    }
    default: break;
    }
    if (consume(P, "none"))
        return new_expr(P, E_NONE, t->loc);
    if (lex_is(t, "true") || lex_is(t, "false")) {
        Expr *e = new_expr(P, E_BOOL, t->loc);
        e->bval = lex_is(t, "true");
        P->tok++;
        return e;
    }
    if (consume(P, "(")) {
        Expr *e = expr(P);
        if (!e || !expect(P, ")", " to close the parenthesis"))
            return NULL;
        return e;
    }
    if (consume(P, "[")) {
        Expr *e = new_expr(P, E_LIST, t->loc);
        while (!lex_is(P->tok, "]")) {
            Expr *item = expr(P);
            if (!item)
                return NULL;
            if (e->nitems == 0 && lex_is(P->tok, "for"))
                return comprehension(P, item, t->loc);
            *APPEND(P, e->items, e->nitems) = item;
            if (!consume(P, ","))
                break;
        }
        if (!expect(P, "]", " to close the list"))
            return NULL;
        for (int i = 0; i < e->nitems && e; i++)
            e = bounded(P, e, e->items[i]);
        return e;
    }
    fail(P, t->loc, "expected an expression, found %s", tok_desc(P, t));
    return NULL;
}

/* postfix := primary ("(" args ")" | "." IDENT | "[" index_item ("," index_item)* ","? "]")* */
static Expr *postfix(Parser *P) {
    Expr *e = primary(P);
    while (e) {
        Token *t = P->tok;
        if (consume(P, "(")) {
            Expr *call = new_expr(P, E_CALL, e->loc);
            call->lhs = e;
            if (!call_args(P, call))
                return NULL;
            for (int i = 0; call && i < call->nitems; i++) /* bounded() is NULL past the depth limit */
                call = bounded(P, call, call->items[i]);
            if (!call || !(e = bounded(P, call, e)))
                return NULL;
        } else if (consume(P, ".")) {
            Expr *attr = new_expr(P, E_ATTR, t->loc);
            attr->lhs = e;
            if (!(attr->name = ident(P, "an attribute name after '.'")))
                return NULL;
            if (!(e = bounded(P, attr, e)))
                return NULL;
        } else if (consume(P, "[")) {
            Expr *index = new_expr(P, E_INDEX, t->loc);
            index->lhs = e;
            do {
                Expr *item = index_item(P);
                if (!item)
                    return NULL;
                if (index->nitems == IR_MAX_RANK + 1) /* more than any tensor's rank, plus an ellipsis */
                    return fail(P, item->loc, "more than %d indices", IR_MAX_RANK + 1), NULL;
                *APPEND(P, index->items, index->nitems) = item;
            } while (consume(P, ",") && !lex_is(P->tok, "]"));
            if (!expect(P, "]", " to close the index"))
                return NULL;
            index->rhs = index->items[0];
            for (int i = 0; i < index->nitems && index; i++)
                index = bounded(P, index, index->items[i]);
            if (!(e = bounded(P, index, e)))
                return NULL;
        } else {
            break;
        }
    }
    return e;
}

/* Long chains (a + b + c ...) nest on the left without recursing in the parser; their height is bounded
   here so that every later walk of the tree is. */
static Expr *bounded(Parser *P, Expr *e, const Expr *operand) {
    if (!e)
        return NULL;
    if (operand && operand->height + 1 > e->height)
        e->height = operand->height + 1;
    if (e->height > FE_MAX_EXPR_DEPTH) {
        fail(P, e->loc, "expression nested too deeply (more than %d levels)", FE_MAX_EXPR_DEPTH);
        return NULL;
    }
    return e;
}

static Expr *binary(Parser *P, BinOp op, Loc loc, Expr *lhs, Expr *rhs) {
    if (!lhs || !rhs)
        return NULL;
    Expr *e = new_expr(P, E_BINARY, loc);
    e->op = op;
    e->lhs = lhs;
    e->rhs = rhs;
    return bounded(P, bounded(P, e, lhs), rhs);
}

static Expr *unary(Parser *P);

/* power := postfix ("**" unary)?     right associative, and binds tighter than unary minus on its left */
static Expr *power(Parser *P) {
    Expr *e = postfix(P);
    Token *t = P->tok;
    if (e && consume(P, "**"))
        return binary(P, B_POW, t->loc, e, unary(P));
    return e;
}

/* unary := "-" unary | power */
static Expr *unary(Parser *P) {
    if (++P->depth > FE_MAX_EXPR_DEPTH) {
        fail(P, P->tok->loc, "expression nested too deeply (more than %d levels)", FE_MAX_EXPR_DEPTH);
        return NULL;
    }
    Expr *e;
    Token *t = P->tok;
    if (consume(P, "-")) {
        Expr *x = unary(P);
        e = NULL;
        if (x) {
            e = new_expr(P, E_NEG, t->loc);
            e->lhs = x;
            e = bounded(P, e, x);
        }
    } else {
        e = power(P);
    }
    P->depth--;
    return e;
}

/* mul := unary (("*" | "/" | "//" | "@" | "%") unary)* */
static Expr *mul(Parser *P) {
    Expr *e = unary(P);
    for (;;) {
        Token *t = P->tok;
        BinOp op;
        if (!e)
            return NULL;
        if (consume(P, "*"))
            op = B_MUL;
        else if (consume(P, "/"))
            op = B_DIV;
        else if (consume(P, "@"))
            op = B_MATMUL;
        else if (consume(P, "%"))
            op = B_MOD;
        else if (consume(P, "//"))
            op = B_FLOORDIV;
        else
            return e;
        e = binary(P, op, t->loc, e, unary(P));
    }
}

/* add := mul (("+" | "-") mul)* */
static Expr *add(Parser *P) {
    Expr *e = mul(P);
    for (;;) {
        Token *t = P->tok;
        BinOp op;
        if (!e)
            return NULL;
        if (consume(P, "+"))
            op = B_ADD;
        else if (consume(P, "-"))
            op = B_SUB;
        else
            return e;
        e = binary(P, op, t->loc, e, mul(P));
    }
}

/* comparison := add (("==" | "!=" | "<" | "<=" | ">" | ">=") add)* */
static Expr *comparison(Parser *P) {
    static const struct { const char *s; BinOp op; } cmp[] = {
        {"==", B_EQ}, {"!=", B_NE}, {"<", B_LT}, {"<=", B_LE}, {">", B_GT}, {">=", B_GE},
    };
    Expr *e = add(P);
    for (;;) {
        Token *t = P->tok;
        size_t i;
        if (!e)
            return NULL;
        for (i = 0; i < sizeof cmp / sizeof *cmp; i++)
            if (consume(P, cmp[i].s))
                break;
        if (i == sizeof cmp / sizeof *cmp)
            return e;
        e = binary(P, cmp[i].op, t->loc, e, add(P));
    }
}

/* not := "not" not | comparison */
static Expr *not_expr(Parser *P) {
    Token *t = P->tok;
    if (!consume(P, "not"))
        return comparison(P);
    if (++P->depth > FE_MAX_EXPR_DEPTH) {
        fail(P, t->loc, "expression nested too deeply (more than %d levels)", FE_MAX_EXPR_DEPTH);
        return NULL;
    }
    Expr *x = not_expr(P), *e = NULL;
    P->depth--;
    if (x) {
        e = new_expr(P, E_NOT, t->loc);
        e->lhs = x;
        e = bounded(P, e, x);
    }
    return e;
}

static Expr *logical(Parser *P, ExprKind k, Loc loc, Expr *lhs, Expr *rhs) {
    if (!lhs || !rhs)
        return NULL;
    Expr *e = new_expr(P, k, loc);
    e->lhs = lhs;
    e->rhs = rhs;
    return bounded(P, bounded(P, e, lhs), rhs);
}

/* and := not ("and" not)* */
static Expr *and_expr(Parser *P) {
    Expr *e = not_expr(P);
    for (Token *t = P->tok; e && consume(P, "and"); t = P->tok)
        e = logical(P, E_AND, t->loc, e, not_expr(P));
    return e;
}

/* expr := and ("or" and)* */
static Expr *expr(Parser *P) {
    if (P->failed)
        return NULL;
    Expr *e = and_expr(P);
    for (Token *t = P->tok; e && consume(P, "or"); t = P->tok)
        e = logical(P, E_OR, t->loc, e, and_expr(P));
    return e;
}

/* type := DTYPE "[" (expr ("," expr)*)? "]"      (scalar: "int" | "float" | "bool" where allow_scalar) */
static TypeExpr *type(Parser *P, bool allow_scalar) {
    Token *t = P->tok;
    TypeExpr *ty = arena_alloc(P->a, sizeof *ty);
    ty->loc = t->loc;
    if (t->kind != TK_IDENT) {
        fail(P, t->loc, "expected a type, found %s", tok_desc(P, t));
        return NULL;
    }
    P->tok++;
    if (allow_scalar && strcmp(t->str, "int") == 0) {
        ty->kind = TY_INT;
        return ty;
    }
    if (allow_scalar && strcmp(t->str, "float") == 0) {
        ty->kind = TY_FLOAT;
        return ty;
    }
    if (allow_scalar && strcmp(t->str, "bool") == 0) {
        ty->kind = TY_BOOL;
        return ty;
    }
    ty->kind = TY_TENSOR;
    if (!ir_dtype_parse(t->str, &ty->dtype)) {
        fail(P, t->loc, "unknown dtype '%s' (expected f32, f64, i32, i64 or u8)", t->str);
        return NULL;
    }
    if (!expect(P, "[", " after the dtype"))
        return NULL;
    while (!lex_is(P->tok, "]")) {
        Expr *dim = expr(P);
        if (!dim)
            return NULL;
        if (ty->ndims == IR_MAX_RANK) {
            fail(P, dim->loc, "a tensor type has at most %d dimensions", IR_MAX_RANK);
            return NULL;
        }
        *APPEND(P, ty->dims, ty->ndims) = dim;
        if (!consume(P, ","))
            break;
    }
    if (!expect(P, "]", " to close the shape"))
        return NULL;
    return ty;
}

/* params := param ("," param)* ","?     param := IDENT (":" type)? ("=" expr)?;  "(" consumed, ")" ends */
static bool params(Parser *P, Param **out, int *n) {
    while (!lex_is(P->tok, ")")) {
        Param p = {.loc = P->tok->loc};
        if (!room(P, *n, "parameters") || !(p.name = ident(P, "a parameter name")))
            return false;
        for (int i = 0; i < *n; i++)
            if (strcmp((*out)[i].name, p.name) == 0)
                return fail(P, p.loc, "duplicate parameter '%s'", p.name);
        if (consume(P, ":") && !(p.type = type(P, true)))
            return false;
        if (consume(P, "=") && !(p.dflt = expr(P)))
            return false;
        if (!p.dflt && *n > 0 && (*out)[*n - 1].dflt)
            return fail(P, p.loc, "parameter '%s' without a default follows one with a default", p.name);
        *APPEND(P, *out, *n) = p;
        if (!consume(P, ","))
            break;
    }
    return expect(P, ")", " to close the parameter list");
}

static bool stmts(Parser *P, Stmt **out, int *n);

/* if := "if" expr block ("else" (if | block))?      ("if" consumed) */
static bool if_stmt(Parser *P, Stmt *s) {
    s->kind = S_IF;
    if (!(s->value = expr(P)) || !stmts(P, &s->body, &s->nbody))
        return false;
    if (!consume(P, "else"))
        return true;
    if (lex_is(P->tok, "if")) {
        Stmt *elif = APPEND(P, s->orelse, s->norelse);
        *elif = (Stmt){.loc = P->tok->loc};
        P->tok++;
        return if_stmt(P, elif);
    }
    return stmts(P, &s->orelse, &s->norelse);
}

/* stmt := IDENT "=" expr | "return" expr | if | "for" IDENT "in" expr block | expr (a call) */
static bool stmt(Parser *P, Stmt *s) {
    if (consume(P, "return")) {
        s->kind = S_RETURN;
        return (s->value = expr(P)) != NULL;
    }
    if (consume(P, "if"))
        return if_stmt(P, s);
    if (consume(P, "for")) {
        s->kind = S_FOR;
        return (s->name = ident(P, "a loop variable after 'for'")) && expect_in(P) && (s->value = expr(P)) &&
               stmts(P, &s->body, &s->nbody);
    }
    if (P->tok->kind == TK_IDENT && lex_is(P->tok + 1, "=")) {
        s->kind = S_ASSIGN;
        s->name = P->tok->str;
        P->tok += 2;
        return (s->value = expr(P)) != NULL;
    }
    if (P->tok->kind == TK_EOF)
        return fail(P, P->tok->loc, "expected '}' to close the body, found end of file");
    if (P->tok->kind != TK_IDENT && !lex_is(P->tok, "("))
        return fail(P, P->tok->loc, "expected a statement, found %s", tok_desc(P, P->tok));
    s->kind = S_EXPR;
    if (!(s->value = expr(P)))
        return false;
    if (s->value->kind != E_CALL)
        return fail(P, s->loc, "a statement must be an assignment, a call, 'return', 'if' or 'for'");
    return true;
}

/* block := "{" stmt* "}" */
static bool stmts(Parser *P, Stmt **out, int *n) {
    if (!expect(P, "{", " to open the body"))
        return false;
    if (++P->depth > FE_MAX_EXPR_DEPTH)
        return fail(P, P->tok->loc, "blocks nested too deeply (more than %d levels)", FE_MAX_EXPR_DEPTH);
    while (!consume(P, "}")) {
        Stmt s = {.loc = P->tok->loc};
        if (!room(P, *n, "statements in one body") || !stmt(P, &s))
            return false;
        *APPEND(P, *out, *n) = s;
    }
    P->depth--;
    return true;
}

static bool block(Parser *P, Func *f) { return stmts(P, &f->body, &f->nbody); }

/* func := "(" params? ")" ("->" type)? block   (after the name) */
static Func *func(Parser *P, const char *name, Loc loc) {
    Func *f = arena_alloc(P->a, sizeof *f);
    f->name = name;
    f->loc = loc;
    if (!expect(P, "(", " to open the parameter list") || !params(P, &f->params, &f->nparams))
        return NULL;
    if (consume(P, "->") && !(f->ret = type(P, true)))
        return NULL;
    return block(P, f) ? f : NULL;
}

/* The contextual keywords of members: `buffer` and `freeze` stay usable as names elsewhere. */
static bool at_word(const Parser *P, const char *w) { return P->tok->kind == TK_IDENT && strcmp(P->tok->str, w) == 0; }

/* path := IDENT ("." (IDENT | INT))* */
static bool path(Parser *P, Member *m) {
    do {
        Token *t = P->tok;
        if (t->kind != TK_IDENT && t->kind != TK_INT)
            return fail(P, t->loc, "expected a member name in the path, found %s", tok_desc(P, t));
        P->tok++;
        if (m->npath == IR_MAX_RANK * 8)
            return fail(P, t->loc, "path too long");
        m->path_locs = grow(P, m->path_locs, m->npath, sizeof *m->path_locs);
        m->path_locs[m->npath] = t->loc;
        *APPEND(P, m->path, m->npath) = t->str;
    } while (consume(P, "."));
    return true;
}

static bool member_list(Parser *P, Decl *d, Member **out, int *n);

/* At `init` followed by a path and '=': the member `init path = INIT` on the next line, not the init clause
   of the param or buffer before it (newlines are not tokens). */
static bool at_init_member(const Parser *P) {
    const Token *t = P->tok + 1;
    while (t->kind == TK_IDENT || t->kind == TK_INT || t->kind == TK_FLOAT || lex_is(t, "."))
        t++;
    return t > P->tok + 1 && lex_is(t, "=");
}

/* member := IDENT "=" ("param" | "buffer") type ("init" expr)? | IDENT "=" expr | "forward" func
           | "if" expr "{" member* "}" ("else" ("if" ... | "{" member* "}"))? | "freeze" path
           | "init" path "=" expr */
static bool member(Parser *P, Decl *d, Member *m) {
    if (consume(P, "forward")) {
        m->kind = M_FORWARD;
        m->name = "forward";
        return (m->forward = func(P, "forward", m->loc)) != NULL;
    }
    if (consume(P, "if")) {
        m->kind = M_IF;
        if (!(m->value = expr(P)) || !member_list(P, d, &m->members, &m->nmembers))
            return false;
        if (!consume(P, "else"))
            return true;
        if (lex_is(P->tok, "if")) {
            Member *elif = APPEND(P, m->orelse, m->norelse);
            *elif = (Member){.loc = P->tok->loc};
            return member(P, d, elif);
        }
        return member_list(P, d, &m->orelse, &m->norelse);
    }
    if (consume(P, "init")) {
        m->kind = M_INIT;
        return path(P, m) && expect(P, "=", " after the path") && (m->init = expr(P)) != NULL;
    }
    if (at_word(P, "freeze") && P->tok[1].kind == TK_IDENT) {
        P->tok++;
        m->kind = M_FREEZE;
        return path(P, m);
    }
    if (P->tok->kind == TK_EOF)
        return fail(P, P->tok->loc, "expected '}' to close '%s', found end of file", d->name);
    if (!(m->name = ident(P, "a member name")) || !expect(P, "=", " after the member name"))
        return false;
    bool buffer = at_word(P, "buffer") && P->tok[1].kind == TK_IDENT && lex_is(P->tok + 2, "[");
    if (consume(P, "param") || buffer) {
        m->kind = buffer ? M_BUFFER : M_PARAM;
        P->tok += buffer;
        if (!(m->type = type(P, false)))
            return false;
        if (lex_is(P->tok, "init") && !at_init_member(P)) {
            P->tok++;
            return (m->init = expr(P)) != NULL;
        }
        return true;
    }
    m->kind = M_ASSIGN;
    return (m->value = expr(P)) != NULL;
}

/* "{" member* "}": names unique within one list */
static bool member_list(Parser *P, Decl *d, Member **out, int *n) {
    if (!expect(P, "{", " to open the body"))
        return false;
    if (++P->depth > FE_MAX_EXPR_DEPTH)
        return fail(P, P->tok->loc, "blocks nested too deeply (more than %d levels)", FE_MAX_EXPR_DEPTH);
    while (!consume(P, "}")) {
        Member m = {.loc = P->tok->loc};
        if (!room(P, *n, "members in one declaration") || !member(P, d, &m))
            return false;
        for (int i = 0; m.name && i < *n; i++) {
            if ((*out)[i].name && strcmp((*out)[i].name, m.name) == 0) {
                fail(P, m.loc, "duplicate member '%s' in '%s'", m.name, d->name);
                diag_note(P->d, (*out)[i].loc, "'%s' first defined here", m.name);
                return false;
            }
        }
        *APPEND(P, *out, *n) = m;
    }
    P->depth--;
    return true;
}

static bool members(Parser *P, Decl *d) { return member_list(P, d, &d->members, &d->nmembers); }

/* train := "train" IDENT "{" (IDENT "=" expr)* "}" */
static bool train(Parser *P, Decl *d) {
    if (!expect(P, "{", " to open the train block"))
        return false;
    while (!consume(P, "}")) {
        TrainEntry e = {.loc = P->tok->loc};
        if (!room(P, d->nentries, "train settings"))
            return false;
        if (P->tok->kind == TK_EOF)
            return fail(P, P->tok->loc, "expected '}' to close the train block, found end of file");
        if (!(e.key = ident(P, "a train setting name")) || !expect(P, "=", " after the setting name"))
            return false;
        for (int i = 0; i < d->nentries; i++)
            if (strcmp(d->entries[i].key, e.key) == 0)
                return fail(P, e.loc, "train setting '%s' given twice", e.key);
        if (!(e.value = expr(P)))
            return false;
        *APPEND(P, d->entries, d->nentries) = e;
    }
    return true;
}

/* file := (model | layer | def | train)* */
Module *parse_file(Arena *a, Diag *d, const char *file, const char *text) {
    int ntok;
    Token *toks = lex_tokenize(a, d, file, text, &ntok);
    if (!toks)
        return NULL;
    Parser P = {.a = a, .d = d, .file = file, .tok = toks};
    Module *m = arena_alloc(a, sizeof *m);
    m->file = file;
    while (P.tok->kind != TK_EOF) {
        Decl decl = {0};
        Token *kw = P.tok;
        if (!room(&P, m->ndecls, "declarations in one file"))
            return NULL;
        if (consume(&P, "model"))
            decl.kind = D_MODEL;
        else if (consume(&P, "layer"))
            decl.kind = D_LAYER;
        else if (consume(&P, "def"))
            decl.kind = D_DEF;
        else if (consume(&P, "train"))
            decl.kind = D_TRAIN;
        else {
            fail(&P, kw->loc, "expected 'model', 'layer', 'def' or 'train', found %s", tok_desc(&P, kw));
            return NULL;
        }
        decl.loc = P.tok->loc;
        if (!(decl.name = ident(&P, "a name")))
            return NULL;
        bool ok;
        switch (decl.kind) {
        case D_MODEL: ok = members(&P, &decl); break;
        case D_LAYER:
            ok = expect(&P, "(", " to open the parameter list") && params(&P, &decl.params, &decl.nparams) &&
                 members(&P, &decl);
            break;
        case D_DEF: ok = (decl.func = func(&P, decl.name, decl.loc)) != NULL; break;
        default: ok = train(&P, &decl); break;
        }
        if (!ok || P.failed)
            return NULL;
        *APPEND(&P, m->decls, m->ndecls) = decl;
    }
    return m;
}

const char *parse_binop_name(BinOp op) {
    static const char *const names[] = {"==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "@", "%", "**", "//"};
    return names[op];
}
