/* print.c: the text IR (one node a line, typed, with the model location as a trailing comment); the
   Graphviz form is in dot.c. ir_parse in parse.c reads the text form back; the two must round-trip byte for
   byte. */
#include "ir.h"

#include <math.h>
#include <string.h>

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else if (*s == '\t')
            fputs("\\t", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

void ir_print_rval(FILE *out, const RVal *v)
{
    if (!v) {
        fputs("?", out);
        return;
    }
    switch (v->kind) {
    case RV_NUM:
        if (v->is_int && fabs(v->num) < 9e15)
            fprintf(out, "%lld", (long long)v->num);
        else
            fprintf(out, "%.17g", v->num);
        break;
    case RV_STR: print_string(out, v->str ? v->str : ""); break;
    case RV_BOOL: fputs(v->num != 0 ? "true" : "false", out); break;
    case RV_NONE: fputs("none", out); break;
    case RV_IDENT: fputs(v->str ? v->str : "?", out); break;
    case RV_LIST:
    case RV_CALL:
        if (v->kind == RV_CALL)
            fprintf(out, "%s(", v->str ? v->str : "?");
        else
            fputc('[', out);
        for (int i = 0; i < v->nitems; i++) {
            if (i)
                fputs(", ", out);
            if (v->kind == RV_CALL && v->keys && v->keys[i])
                fprintf(out, "%s = ", v->keys[i]);
            ir_print_rval(out, v->items[i]);
        }
        fputc(v->kind == RV_CALL ? ')' : ']', out);
        break;
    }
}

static void print_int_list(FILE *out, const int *v, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%d", i ? "," : "", v[i]);
    fputc(']', out);
}

static void print_i64_list(FILE *out, const int64_t *v, int n)
{
    fputc('[', out);
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%lld", i ? "," : "", (long long)v[i]);
    fputc(']', out);
}

/* Opens the {...} block before the first attribute and separates the later ones. */
static FILE *attr_sep(FILE *out, bool *open)
{
    fputs(*open ? ", " : " {", out);
    *open = true;
    return out;
}

/* The {...} block: only the attributes the op reads, leaving out defaults (npow=0, no flags) and what the
   type after ':' already says (cast, reshape and broadcast targets). */
static void print_attrs(FILE *out, const Node *n)
{
    const Attr *a = &n->attr;
    bool open = false;
    switch (n->op) {
    case OP_PARAM:
        if (a->frozen)
            fputs("frozen", attr_sep(out, &open));
        break;
    case OP_CONST:
        if (a->npow)
            fprintf(attr_sep(out, &open), "npow=%d", a->npow);
        break;
    case OP_REDUCE_SUM:
    case OP_REDUCE_MEAN:
    case OP_REDUCE_MAX:
    case OP_REDUCE_MIN: {
        int axes[32], k = 0;
        for (int i = 0; i < 32; i++)
            if (a->axes & (1u << i))
                axes[k++] = i;
        fputs("axes=", attr_sep(out, &open));
        print_int_list(out, axes, k);
        if (a->keepdim)
            fputs("keepdim", attr_sep(out, &open));
        break;
    }
    case OP_ARGMAX:
    case OP_ARGMIN:
        fprintf(attr_sep(out, &open), "axis=%d", a->axis);
        if (a->keepdim)
            fputs("keepdim", attr_sep(out, &open));
        break;
    case OP_MATMUL:
        if (a->transpose_a)
            fputs("transpose_a", attr_sep(out, &open));
        if (a->transpose_b)
            fputs("transpose_b", attr_sep(out, &open));
        break;
    case OP_TRANSPOSE:
        fputs("perm=", attr_sep(out, &open));
        print_int_list(out, a->perm, n->shape.rank);
        break;
    case OP_ONE_HOT: fprintf(attr_sep(out, &open), "classes=%lld", (long long)a->classes); break;
    case OP_IOTA:
    case OP_CONCAT:
    case OP_GATHER:
    case OP_SCATTER_ADD: fprintf(attr_sep(out, &open), "axis=%d", a->axis); break;
    case OP_RANDOM: fprintf(attr_sep(out, &open), "stream=%u", (unsigned)a->stream); break;
    case OP_CONV2D:
    case OP_CONV2D_BWD_INPUT:
    case OP_CONV2D_BWD_WEIGHT:
        fputs("stride=", attr_sep(out, &open));
        print_int_list(out, a->stride, 2);
        fputs("pad=", attr_sep(out, &open));
        print_int_list(out, a->pad, 2);
        fputs("dilation=", attr_sep(out, &open));
        print_int_list(out, a->dilation, 2);
        fprintf(attr_sep(out, &open), "groups=%d", a->groups);
        break;
    case OP_MAX_POOL2D:
    case OP_MAX_POOL2D_BWD:
    case OP_AVG_POOL2D:
    case OP_AVG_POOL2D_BWD: {
        bool is_max = n->op == OP_MAX_POOL2D || n->op == OP_MAX_POOL2D_BWD;
        fputs("window=", attr_sep(out, &open));
        print_int_list(out, a->window, 2);
        fputs("stride=", attr_sep(out, &open));
        print_int_list(out, a->stride, 2);
        fputs("pad=", attr_sep(out, &open));
        print_int_list(out, a->pad, 2);
        if (is_max) {
            fputs("dilation=", attr_sep(out, &open));
            print_int_list(out, a->dilation, 2);
        }
        if (a->ceil_mode)
            fputs("ceil_mode", attr_sep(out, &open));
        if (!is_max && a->count_include_pad)
            fputs("count_include_pad", attr_sep(out, &open));
        break;
    }
    case OP_SLICE:
    case OP_PAD:
        fputs("start=", attr_sep(out, &open));
        print_i64_list(out, a->start, n->shape.rank);
        fputs("step=", attr_sep(out, &open));
        print_i64_list(out, a->step, n->shape.rank);
        if (n->op == OP_PAD)
            fprintf(attr_sep(out, &open), "value=%.17g", a->value); /* inf, -inf and nan read back too */
        break;
    default: break;
    }
    if (open)
        fputc('}', out);
}

void ir_print_node(FILE *out, const Node *n)
{
    char type[256];
    fprintf(out, "%%%d = %s", n->id, ir_op_name(n->op));
    switch (n->op) {
    case OP_INPUT:
    case OP_PARAM:
    case OP_STATE:
        fputc(' ', out);
        print_string(out, n->attr.name ? n->attr.name : "");
        break;
    case OP_CONST: fprintf(out, " %.17g", n->attr.value); break;
    default:
        for (int i = 0; i < n->ninputs; i++)
            fprintf(out, "%s%%%d", i ? ", " : " ", n->inputs[i] ? n->inputs[i]->id : -1);
        break;
    }
    print_attrs(out, n);
    fprintf(out, " : %s", ir_type_str(n->dtype, &n->shape, type, sizeof type));
    if (n->group >= 0)
        fprintf(out, " in %%%d", n->group);
    if (n->loc.file)
        fprintf(out, "  # %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
}

void ir_print(FILE *out, const Graph *g)
{
    ir_print_noted(out, g, NULL);
}

void ir_print_noted(FILE *out, const Graph *g, IrNoteFn note)
{
    fprintf(out, "graph %s {\n", g->name && *g->name ? g->name : "_");
    if (g->optimizer) {
        fputs("  optimizer = ", out);
        ir_print_rval(out, g->optimizer);
        fputc('\n', out);
    }
    for (int i = 0; i < g->nnodes; i++) {
        if (note)
            note(out, g, g->nodes[i]);
        fputs("  ", out);
        ir_print_node(out, g->nodes[i]);
        fputc('\n', out);
    }
    for (int i = 0; i < g->noutputs; i++) {
        const Output *o = &g->outputs[i];
        fprintf(out, "  %s ", o->update ? "update" : "output");
        print_string(out, o->name);
        fprintf(out, " = %%%d\n", o->value ? o->value->id : -1);
    }
    fputs("}\n", out);
}
