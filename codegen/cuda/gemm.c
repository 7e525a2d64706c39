/* gemm.c: matmul and the three convolution products, lone or as an epilogue group's anchor (cu_int.h). Each
   is one GEMM C[b] = A[b] B[b] over a batch b, computed in 64x64 tiles of C staged through shared memory 16
   deep along K, and each output element then runs the group's epilogue. The operands are read through
   generated loaders: a matmul's inputs with their transposes and broadcast batch dims, a convolution's as an
   implicit GEMM (the im2col matrix is never built), the batch being the convolution's groups. */
#include "cu_int.h"

#include <stdint.h>
#include <string.h>

enum { TILE = 64, DEPTH = 16, PAD = 4, THREADS = 256 };
#define IND "                    " /* a loader's statements sit this deep */

/* A size of the problem: c * n^p, n the batch size bound at run time. */
typedef struct Sz {
    int64_t c;
    int p;
} Sz;

/* The GEMM of an anchor: C [batches, rows, cols] with a sum over depth, and how its tiles are read and
   written. */
typedef struct Gemm {
    const Node *an;
    const char *t; /* the element type */
    Sz rows, cols, depth, batches;
    bool a_kfast, b_kfast; /* adjacent elements of the operand in memory run along K: loads go along K */
    bool row_fast;         /* adjacent rows of C are adjacent in the output: threads go along rows */
    int a, b;              /* the operands' buffers */
} Gemm;

static Sz sz_dim(int64_t d) { return d == IR_DIM_N ? (Sz){1, 1} : (Sz){d, 0}; }

static Sz sz_mul(Sz x, Sz y) {
    int64_t c;
    if (ir_mul_overflows(x.c, y.c, &c))
        c = INT64_MAX; /* only a launch's size estimate can get here: the grid is clamped anyway */
    return (Sz){c, x.p + y.p};
}

/* s as a C expression of type long long, parenthesized where it is a product. */
static const char *sz_str(Sz s, char *buf, size_t size) {
    int len = snprintf(buf, size, "%s%lldLL", s.p ? "(" : "", (long long)s.c);
    for (int i = 0; i < s.p && len > 0 && (size_t)len < size; i++)
        len += snprintf(buf + len, size - (size_t)len, " * n");
    if (s.p && len > 0 && (size_t)len < size)
        snprintf(buf + len, size - (size_t)len, ")");
    return buf;
}

/* The product of dims [from, to) of s. */
static Sz sz_dims(const Shape *s, int from, int to) {
    Sz r = {1, 0};
    for (int i = from; i < to; i++)
        r = sz_mul(r, sz_dim(s->dim[i]));
    return r;
}

/* ---------------------------------------------------------------- matmul
   C[b] = op(A[b]) op(B[b]), A's and B's batch dims broadcast to C's (stride 0 where they are 1 or absent).
   When B has no batch dims and A is not transposed, A's batch dims fold into the rows, as on the CPU. */

static bool mm_folds(const Node *an) {
    return an->inputs[1]->shape.rank == 2 && !an->attr.transpose_a && an->inputs[0]->shape.rank > 2;
}

static void mm_plan(Gemm *gm) {
    const Node *an = gm->an;
    const Shape *as = &an->inputs[0]->shape, *bs = &an->inputs[1]->shape, *cs = &an->shape;
    bool ta = an->attr.transpose_a, tb = an->attr.transpose_b;
    Sz a0 = sz_dim(as->dim[as->rank - 2]), a1 = sz_dim(as->dim[as->rank - 1]);
    gm->rows = ta ? a1 : a0;
    gm->depth = ta ? a0 : a1;
    gm->cols = sz_dim(tb ? bs->dim[bs->rank - 2] : bs->dim[bs->rank - 1]);
    gm->batches = sz_dims(cs, 0, cs->rank - 2);
    if (mm_folds(an)) {
        gm->rows = sz_mul(gm->rows, gm->batches);
        gm->batches = (Sz){1, 0};
    }
    gm->a_kfast = !ta;
    gm->b_kfast = tb;
    gm->row_fast = false;
}

/* How far operand x's matrices are apart along C's batch dim i: 0 where x lacks the dim or has it as 1. */
static Sz mm_batch_stride(const Shape *x, const Shape *c, int i) {
    int xr = x->rank - 2, xi = i - (c->rank - 2 - xr);
    if (xi < 0 || x->dim[xi] == 1)
        return (Sz){0, 0};
    return sz_dims(x, xi + 1, x->rank);
}

/* aoff, boff: where batch bt's matrices start in A and B; bt's index along C's batch dim i is
   bt / (the product of the dims after i) % dim i. */
static void mm_tile(CuBuf *s, const Gemm *gm) {
    const Node *an = gm->an;
    const Shape *as = &an->inputs[0]->shape, *bs = &an->inputs[1]->shape, *cs = &an->shape;
    cu_printf(s, "        long long aoff = 0, boff = 0;\n");
    char b1[96], b2[96], b3[96];
    for (int i = 0; i < cs->rank - 2 && !mm_folds(an); i++) {
        Sz st[2] = {mm_batch_stride(as, cs, i), mm_batch_stride(bs, cs, i)};
        for (int o = 0; o < 2; o++)
            if (st[o].c != 0)
                cu_printf(s, "        %s += bt / %s %% %s * %s;\n", o == 0 ? "aoff" : "boff",
                          sz_str(sz_dims(cs, i + 1, cs->rank - 2), b1, sizeof b1),
                          sz_str(sz_dim(cs->dim[i]), b2, sizeof b2), sz_str(st[o], b3, sizeof b3));
    }
}

static void mm_load_a(CuBuf *s, const Gemm *gm) {
    if (gm->an->attr.transpose_a)
        cu_printf(s, IND "v = b%d[aoff + k * rows + i];\n", gm->a);
    else
        cu_printf(s, IND "v = b%d[aoff + i * depth + k];\n", gm->a);
}

static void mm_load_b(CuBuf *s, const Gemm *gm) {
    if (gm->an->attr.transpose_b)
        cu_printf(s, IND "v = b%d[boff + j * depth + k];\n", gm->b);
    else
        cu_printf(s, IND "v = b%d[boff + k * cols + j];\n", gm->b);
}

/* ---------------------------------------------------------------- convolutions
   Per group g (the batch), with x [N,C,H,W], w [O,C/G,KH,KW], y [N,O,OH,OW] the forward op's tensors:
     conv2d            y[n, gO+o, p]   = sum over (c, kh, kw) of x[n, gC+c, window tap] w[gO+o, c, kh, kw]
                       rows (n, oh, ow), cols o, depth (c, kh, kw)
     conv2d_bwd_input  gx[n, gC+c, h, w] = sum over (o, kh, kw) of gy[n, gO+o, oh, ow] w[gO+o, c, kh, kw] where
                       (h + ph - kh dh) / sh = oh lands exactly inside gy (likewise w): rows (n, h, w), cols c,
                       depth (o, kh, kw)
     conv2d_bwd_weight gw[gO+o, c, kh, kw] = sum over (n, oh, ow) of gy[n, gO+o, oh, ow] x[n, gC+c, tap]
                       rows o, cols (c, kh, kw), depth (n, oh, ow): the whole batch in one order per output */

typedef struct Conv {
    int64_t c, h, w, o, oh, ow, kh, kw;
    int64_t sh, sw, ph, pw, dh, dw;
    int64_t cg, og;                 /* channels per group */
} Conv;

static Conv conv_geometry(const Node *an) {
    /* x and y: the forward op's input and output, whichever tensors hold them or their gradients */
    const Shape *x = an->op == OP_CONV2D_BWD_INPUT ? &an->shape : &an->inputs[0]->shape;
    const Shape *y = an->op == OP_CONV2D ? &an->shape : an->op == OP_CONV2D_BWD_INPUT ? &an->inputs[0]->shape
                                                                                      : &an->inputs[1]->shape;
    const Shape *w = an->op == OP_CONV2D_BWD_WEIGHT ? &an->shape : &an->inputs[1]->shape;
    const Attr *a = &an->attr;
    int64_t groups = a->groups > 0 ? a->groups : 1;
    return (Conv){
        .c = x->dim[1], .h = x->dim[2], .w = x->dim[3],
        .o = y->dim[1], .oh = y->dim[2], .ow = y->dim[3], .kh = w->dim[2], .kw = w->dim[3],
        .sh = a->stride[0], .sw = a->stride[1], .ph = a->pad[0], .pw = a->pad[1],
        .dh = a->dilation[0], .dw = a->dilation[1], .cg = x->dim[1] / groups, .og = y->dim[1] / groups,
    };
}

static void conv_plan(Gemm *gm) {
    Conv v = conv_geometry(gm->an);
    Sz n = sz_dim(gm->an->op == OP_CONV2D_BWD_INPUT ? gm->an->shape.dim[0] : gm->an->inputs[0]->shape.dim[0]);
    gm->batches = (Sz){gm->an->attr.groups > 0 ? gm->an->attr.groups : 1, 0};
    switch (gm->an->op) {
    case OP_CONV2D:
        gm->rows = sz_mul(n, (Sz){v.oh * v.ow, 0});
        gm->cols = (Sz){v.og, 0};
        gm->depth = (Sz){v.cg * v.kh * v.kw, 0};
        gm->a_kfast = false, gm->b_kfast = true, gm->row_fast = true;
        break;
    case OP_CONV2D_BWD_INPUT:
        gm->rows = sz_mul(n, (Sz){v.h * v.w, 0});
        gm->cols = (Sz){v.cg, 0};
        gm->depth = (Sz){v.og * v.kh * v.kw, 0};
        gm->a_kfast = false, gm->b_kfast = true, gm->row_fast = true;
        break;
    default: /* OP_CONV2D_BWD_WEIGHT */
        gm->rows = (Sz){v.og, 0};
        gm->cols = (Sz){v.cg * v.kh * v.kw, 0};
        gm->depth = sz_mul(n, (Sz){v.oh * v.ow, 0});
        gm->a_kfast = true, gm->b_kfast = false, gm->row_fast = false;
        break;
    }
}

/* v = x[nb, g cg + c, oh sh - ph + kh dh, ow sw - pw + kw dw], or 0 in the padding; nb, c, oh, ow, kh, kw
   are in scope. */
static void conv_tap(CuBuf *s, const Conv *v, int x) {
    cu_printf(s, IND "const long long ih = oh * %lldLL - %lldLL + kh * %lldLL, iw = ow * %lldLL - %lldLL + kw * %lldLL;\n",
              (long long)v->sh, (long long)v->ph, (long long)v->dh, (long long)v->sw, (long long)v->pw, (long long)v->dw);
    cu_printf(s, IND "if (ih >= 0 && ih < %lldLL && iw >= 0 && iw < %lldLL)\n", (long long)v->h,
              (long long)v->w);
    cu_printf(s, IND "    v = b%d[((nb * %lldLL + g * %lldLL + c) * %lldLL + ih) * %lldLL + iw];\n", x,
              (long long)v->c, (long long)v->cg, (long long)v->h, (long long)v->w);
}

/* Splits e into (outer, mid, inner) by the sizes mid and inner: `const long long outer = ..., mid = ...`. */
static void split3(CuBuf *s, const char *e, const char *outer, const char *mid, const char *inner, int64_t mids,
                   int64_t inners) {
    cu_printf(s, IND "const long long %s = %s / %lldLL, %s = %s / %lldLL %% %lldLL, %s = %s %% %lldLL;\n", outer, e,
              (long long)(mids * inners), mid, e, (long long)inners, (long long)mids, inner, e, (long long)inners);
}

static void conv_load_a(CuBuf *s, const Gemm *gm) {
    Conv v = conv_geometry(gm->an);
    switch (gm->an->op) {
    case OP_CONV2D:
        split3(s, "i", "nb", "oh", "ow", v.oh, v.ow);
        split3(s, "k", "c", "kh", "kw", v.kh, v.kw);
        conv_tap(s, &v, gm->a);
        break;
    case OP_CONV2D_BWD_INPUT:
        split3(s, "i", "nb", "h", "w", v.h, v.w);
        split3(s, "k", "o", "kh", "kw", v.kh, v.kw);
        /* the output cell (th / sh, tw / sw) that tap (kh, kw) of it reads from (h, w) */
        cu_printf(s, IND "const long long th = h + %lldLL - kh * %lldLL, tw = w + %lldLL - kw * %lldLL;\n",
                  (long long)v.ph, (long long)v.dh, (long long)v.pw, (long long)v.dw);
        cu_printf(s, IND "if (th >= 0 && tw >= 0 && th %% %lldLL == 0 && tw %% %lldLL == 0 && th / %lldLL < %lldLL && "
                     "tw / %lldLL < %lldLL)\n", (long long)v.sh, (long long)v.sw, (long long)v.sh,
                  (long long)v.oh, (long long)v.sw, (long long)v.ow);
        cu_printf(s, IND "    v = b%d[((nb * %lldLL + g * %lldLL + o) * %lldLL + th / %lldLL) * %lldLL + tw / %lldLL];\n",
                  gm->a, (long long)v.o, (long long)v.og, (long long)v.oh, (long long)v.sh, (long long)v.ow,
                  (long long)v.sw);
        break;
    default: /* OP_CONV2D_BWD_WEIGHT: gy [nb, g og + i, k's cell] */
        cu_printf(s, IND "v = b%d[(k / %lldLL * %lldLL + g * %lldLL + i) * %lldLL + k %% %lldLL];\n", gm->a,
                  (long long)(v.oh * v.ow), (long long)v.o, (long long)v.og, (long long)(v.oh * v.ow),
                  (long long)(v.oh * v.ow));
        break;
    }
}

static void conv_load_b(CuBuf *s, const Gemm *gm) {
    Conv v = conv_geometry(gm->an);
    int64_t kk = v.kh * v.kw;
    switch (gm->an->op) {
    case OP_CONV2D: /* w [g og + j, k] */
        cu_printf(s, IND "v = b%d[(g * %lldLL + j) * %lldLL + k];\n", gm->b, (long long)v.og, (long long)(v.cg * kk));
        break;
    case OP_CONV2D_BWD_INPUT: /* w [g og + o, j, k's tap] */
        cu_printf(s, IND "v = b%d[((g * %lldLL + k / %lldLL) * %lldLL + j) * %lldLL + k %% %lldLL];\n", gm->b,
                  (long long)v.og, (long long)kk, (long long)v.cg, (long long)kk, (long long)kk);
        break;
    default: /* OP_CONV2D_BWD_WEIGHT: x at k's cell through j's tap */
        split3(s, "k", "nb", "oh", "ow", v.oh, v.ow);
        split3(s, "j", "c", "kh", "kw", v.kh, v.kw);
        conv_tap(s, &v, gm->b);
        break;
    }
}

/* out_i: the flat index in the anchor's shape of C's element (bt, i, j). */
static void print_out_index(CuBuf *s, const Gemm *gm) {
    const Node *an = gm->an;
    if (an->op == OP_MATMUL) {
        cu_printf(s, "(bt * rows + i) * cols + j");
        return;
    }
    Conv v = conv_geometry(an);
    switch (an->op) {
    case OP_CONV2D:
        cu_printf(s, "(i / %lldLL * %lldLL + g * %lldLL + j) * %lldLL + i %% %lldLL", (long long)(v.oh * v.ow),
                  (long long)v.o, (long long)v.og, (long long)(v.oh * v.ow), (long long)(v.oh * v.ow));
        break;
    case OP_CONV2D_BWD_INPUT:
        cu_printf(s, "(i / %lldLL * %lldLL + g * %lldLL + j) * %lldLL + i %% %lldLL", (long long)(v.h * v.w),
                  (long long)v.c, (long long)v.cg, (long long)(v.h * v.w), (long long)(v.h * v.w));
        break;
    default:
        cu_printf(s, "(g * %lldLL + i) * cols + j", (long long)v.og);
        break;
    }
}

/* ---------------------------------------------------------------- the kernel */

/* Stages the TILE x DEPTH block at (i0 or j0, k0) of operand A (is_a: rows i) or B (cols j) into shared
   memory as [k][row or col], zero past the edges; adjacent threads load along K where the operand is
   contiguous along K, else along its rows or cols. */
static void print_stage(CuBuf *s, const Gemm *gm, bool is_a) {
    bool kfast = is_a ? gm->a_kfast : gm->b_kfast;
    const char *x = is_a ? "i" : "j", *lim = is_a ? "rows" : "cols", *base = is_a ? "i0" : "j0";
    cu_printf(s, "            for (int e = threadIdx.x; e < %d; e += %d) {\n", TILE * DEPTH, THREADS);
    if (kfast)
        cu_printf(s, "                const int r = e / %d, q = e %% %d;\n", DEPTH, DEPTH);
    else
        cu_printf(s, "                const int r = e %% %d, q = e / %d;\n", TILE, TILE);
    cu_printf(s, "                const long long %s = %s + r, k = k0 + q;\n", x, base);
    cu_printf(s, "                %s v = 0;\n", gm->t);
    cu_printf(s, "                if (%s < %s && k < depth) {\n", x, lim);
    if (gm->an->op == OP_MATMUL)
        (is_a ? mm_load_a : mm_load_b)(s, gm);
    else
        (is_a ? conv_load_a : conv_load_b)(s, gm);
    cu_printf(s, "                }\n                %s[q][r] = v;\n            }\n", is_a ? "as" : "bs");
}

/* The epilogue of C's element (i, j) valued `c`: the anchor's store, then the other members. */
static void print_epilogue(CuKernel *ck, const Gemm *gm, const char *c) {
    CuBuf *s = ck->src;
    const CgKernel *k = ck->k;
    cu_printf(s, "            if (i < rows && j < cols) {\n");
    cu_printf(s, "                const long long out_i = ");
    print_out_index(s, gm);
    cu_printf(s, ";\n                const %s acc = %s;\n", gm->t, c);
    int mi = cg_member_index(k, gm->an);
    if (!k->sgd_gemm && mi >= 0 && k->materialized[mi])
        cu_printf(s, "                b%d[out_i] = acc;\n", cg_buf_index(k, gm->an));
    if (k->nmembers > 1)
        cu_emit_members_at(ck, "out_i", "acc");
    cu_printf(s, "            }\n");
}

/* Exact FMA: each thread owns a 4x4 register tile, at rows i0 + ri + 16 u and cols j0 + rj + 16 v; adjacent
   threads differ in ri where C's rows are adjacent in the output (row_fast), else in rj, so that the
   epilogue's stores coalesce. */
static void print_fma_body(CuKernel *ck, const Gemm *gm) {
    CuBuf *s = ck->src;
    const char *fma = strcmp(gm->t, "float") == 0 ? "fmaf" : "fma";
    cu_printf(s, "        %s sum[4][4];\n", gm->t);
    cu_printf(s, "#pragma unroll\n        for (int u = 0; u < 16; u++)\n            sum[u / 4][u %% 4] = 0;\n");
    cu_printf(s, "        for (long long k0 = 0; k0 < depth; k0 += %d) {\n", DEPTH);
    print_stage(s, gm, true);
    print_stage(s, gm, false);
    cu_printf(s, "            __syncthreads();\n");
    cu_printf(s, "#pragma unroll\n            for (int q = 0; q < %d; q++) {\n", DEPTH);
    cu_printf(s, "                %s x[4], y[4];\n", gm->t);
    cu_printf(s, "#pragma unroll\n                for (int u = 0; u < 4; u++) {\n");
    cu_printf(s, "                    x[u] = as[q][ri + 16 * u];\n                    y[u] = bs[q][rj + 16 * u];\n");
    cu_printf(s, "                }\n");
    cu_printf(s, "#pragma unroll\n                for (int u = 0; u < 16; u++)\n");
    cu_printf(s, "                    sum[u / 4][u %% 4] = %s(x[u / 4], y[u %% 4], sum[u / 4][u %% 4]);\n", fma);
    cu_printf(s, "            }\n            __syncthreads();\n        }\n");
    cu_printf(s, "#pragma unroll\n        for (int u = 0; u < 16; u++) {\n");
    cu_printf(s, "            const long long i = i0 + ri + 16 * (u / 4), j = j0 + rj + 16 * (u %% 4);\n");
    print_epilogue(ck, gm, "sum[u / 4][u % 4]");
    cu_printf(s, "        }\n");
}

/* TF32 tensor cores: warp w computes C's 16x32 block at rows 16 (w / 2), cols 32 (w % 2) as two m16n16k8
   accumulators, which go through shared memory to the epilogue (a fragment's layout is opaque). */
static void print_wmma_body(CuKernel *ck, const Gemm *gm) {
    CuBuf *s = ck->src;
    const char *frag = "nvcuda::wmma::fragment";
    cu_printf(s, "        const int wr = threadIdx.x / 32 / 2 * 16, wc = threadIdx.x / 32 %% 2 * 32;\n");
    cu_printf(s, "        %s<nvcuda::wmma::matrix_a, 16, 16, 8, nvcuda::wmma::precision::tf32, "
                 "nvcuda::wmma::col_major> fa;\n", frag);
    cu_printf(s, "        %s<nvcuda::wmma::matrix_b, 16, 16, 8, nvcuda::wmma::precision::tf32, "
                 "nvcuda::wmma::row_major> fb;\n", frag);
    cu_printf(s, "        %s<nvcuda::wmma::accumulator, 16, 16, 8, float> fc[2];\n", frag);
    cu_printf(s, "        nvcuda::wmma::fill_fragment(fc[0], 0.0f);\n        nvcuda::wmma::fill_fragment(fc[1], 0.0f);\n");
    cu_printf(s, "        for (long long k0 = 0; k0 < depth; k0 += %d) {\n", DEPTH);
    print_stage(s, gm, true);
    print_stage(s, gm, false);
    cu_printf(s, "            __syncthreads();\n");
    cu_printf(s, "#pragma unroll\n            for (int q = 0; q < %d; q += 8) {\n", DEPTH);
    cu_printf(s, "                nvcuda::wmma::load_matrix_sync(fa, &as[q][wr], %d);\n", TILE + PAD);
    cu_printf(s, "                for (int t = 0; t < fa.num_elements; t++)\n");
    cu_printf(s, "                    fa.x[t] = nvcuda::wmma::__float_to_tf32(fa.x[t]);\n");
    cu_printf(s, "#pragma unroll\n                for (int f = 0; f < 2; f++) {\n");
    cu_printf(s, "                    nvcuda::wmma::load_matrix_sync(fb, &bs[q][wc + 16 * f], %d);\n", TILE + PAD);
    cu_printf(s, "                    for (int t = 0; t < fb.num_elements; t++)\n");
    cu_printf(s, "                        fb.x[t] = nvcuda::wmma::__float_to_tf32(fb.x[t]);\n");
    cu_printf(s, "                    nvcuda::wmma::mma_sync(fc[f], fa, fb, fc[f]);\n                }\n");
    cu_printf(s, "            }\n            __syncthreads();\n        }\n");
    cu_printf(s, "        nvcuda::wmma::store_matrix_sync(&cs[wr][wc], fc[0], %d, nvcuda::wmma::mem_row_major);\n",
              TILE + PAD);
    cu_printf(s, "        nvcuda::wmma::store_matrix_sync(&cs[wr][wc + 16], fc[1], %d, nvcuda::wmma::mem_row_major);\n",
              TILE + PAD);
    cu_printf(s, "        __syncthreads();\n");
    cu_printf(s, "        for (int e = threadIdx.x; e < %d; e += %d) {\n", TILE * TILE, THREADS);
    if (gm->row_fast)
        cu_printf(s, "            const int r = e %% %d, q = e / %d;\n", TILE, TILE);
    else
        cu_printf(s, "            const int r = e / %d, q = e %% %d;\n", TILE, TILE);
    cu_printf(s, "            const long long i = i0 + r, j = j0 + q;\n");
    print_epilogue(ck, gm, "cs[r][q]");
    cu_printf(s, "        }\n");
    cu_printf(s, "        __syncthreads(); /* cs is rewritten by the next tile */\n");
}

/* The tiles: blocks take them in a grid-stride loop, so any grid is correct. */
static void print_kernel(CuKernel *ck, const Gemm *gm, bool tf32) {
    CuBuf *s = ck->src;
    char b1[96], b2[96], b3[96], b4[96];
    if (tf32)
        cu_printf(s, "#ifndef LATHE_CUDA_EMULATE\n#include <mma.h>\n#endif\n");
    cu_signature(ck, THREADS);
    cu_line(ck, gm->an);
    cu_printf(s, "    alignas(32) __shared__ %s as[%d][%d];\n", gm->t, DEPTH, TILE + PAD);
    cu_printf(s, "    alignas(32) __shared__ %s bs[%d][%d];\n", gm->t, DEPTH, TILE + PAD);
    if (tf32)
        cu_printf(s, "    alignas(32) __shared__ float cs[%d][%d];\n", TILE, TILE + PAD);
    cu_printf(s, "    const long long rows = %s, cols = %s, depth = %s, batches = %s;\n",
              sz_str(gm->rows, b1, sizeof b1), sz_str(gm->cols, b2, sizeof b2), sz_str(gm->depth, b3, sizeof b3),
              sz_str(gm->batches, b4, sizeof b4));
    cu_printf(s, "    const long long tm = (rows + %d) / %d, tn = (cols + %d) / %d, tiles = batches * tm * tn;\n",
              TILE - 1, TILE, TILE - 1, TILE);
    if (!tf32) {
        const char *fast = "threadIdx.x % 16", *slow = "threadIdx.x / 16";
        cu_printf(s, "    const int ri = %s, rj = %s;\n", gm->row_fast ? fast : slow, gm->row_fast ? slow : fast);
    }
    cu_printf(s, "    for (long long tile = blockIdx.x; tile < tiles; tile += gridDim.x) {\n");
    cu_printf(s, "        const long long bt = tile / (tm * tn), i0 = tile %% (tm * tn) / tn * %d, j0 = tile %% tn * %d;\n",
              TILE, TILE);
    if (gm->an->op == OP_MATMUL)
        mm_tile(s, gm);
    else
        cu_printf(s, "        const long long g = bt;\n");
    if (tf32)
        print_wmma_body(ck, gm);
    else
        print_fma_body(ck, gm);
    cu_printf(s, "    }\n}\n");
}

bool cu_emit_gemm(CuKernel *ck) {
    const CgKernel *k = ck->k;
    const Node *an = k->anchor ? k->anchor : k->root;
    if (!ir_op_is_anchor(an->op) || (an->dtype != DT_F32 && an->dtype != DT_F64))
        LATHE_UNREACHABLE("cu_emit_gemm: not a float matmul or convolution");
    /* conv2d_bwd_weight's A is its second input, gy */
    bool swap = an->op == OP_CONV2D_BWD_WEIGHT;
    Gemm gm = {.an = an, .t = cu_type(an->dtype), .a = cg_buf_index(k, an->inputs[swap]),
               .b = cg_buf_index(k, an->inputs[!swap])};
    if (gm.a < 0 || gm.b < 0)
        LATHE_UNREACHABLE("cu_emit_gemm: an operand without a buffer");
    if (an->op == OP_MATMUL)
        mm_plan(&gm);
    else
        conv_plan(&gm);
    print_kernel(ck, &gm, an->dtype == DT_F32 && !ck->o->fp32);
    /* one item a tile, counted from above: ceil(c n^p / 64) <= ceil(c / 64) n^p */
    Sz tiles = sz_mul(gm.batches, sz_mul((Sz){(gm.rows.c + TILE - 1) / TILE, gm.rows.p},
                                         (Sz){(gm.cols.c + TILE - 1) / TILE, gm.cols.p}));
    ck->items_c = tiles.c;
    ck->items_p = tiles.p;
    ck->per_block = 1;
    return true;
}
