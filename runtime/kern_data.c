/* kern_data.c: the data-movement kernels that generated code calls (lathe_kern.h): slice, pad and concat
   are each one strided block copy whose innermost run is a memcpy wherever both sides are contiguous there;
   gather and scatter_add walk their index in order; random fills its output from the counter-based
   Philox generator, so that any element can be computed alone and the interpreter agrees bit for bit. */
#include "lathe_kern.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ir.h's DType numbering, which the gather and scatter_add descriptors use for the index's dtype (the
   runtime does not include the compiler's headers). */
enum { KD_F32, KD_F64, KD_I32, KD_I64, KD_U8 };

typedef struct Dims {
    int rank;
    int64_t d[LATHE_KD_MAX_RANK];
    int64_t st[LATHE_KD_MAX_RANK]; /* contiguous element strides */
} Dims;

/* Dims of a descriptor entry (rank, then 8 dims), -1 replaced by the run's batch size. */
static Dims dims_at(const int64_t *rank_then_dims, int64_t n) {
    Dims s;
    s.rank = (int)rank_then_dims[0];
    if (s.rank < 0)
        s.rank = 0;
    if (s.rank > LATHE_KD_MAX_RANK)
        s.rank = LATHE_KD_MAX_RANK;
    int64_t acc = 1;
    for (int i = s.rank - 1; i >= 0; i--) {
        int64_t v = rank_then_dims[1 + i];
        s.d[i] = v < 0 ? n : v;
        s.st[i] = acc;
        acc *= s.d[i];
    }
    return s;
}

static Dims out_dims(const int64_t *desc, int64_t n) {
    return dims_at(desc + 1, n);
}

static Dims in_dims(const int64_t *desc, int i, int64_t n) {
    return dims_at(desc + 10 + 9 * i, n);
}

static int64_t numel(const Dims *s) {
    int64_t c = 1;
    for (int i = 0; i < s->rank; i++)
        c *= s->d[i];
    return c;
}

/* ---------------------------------------------------------------- strided block copies */

/* Copies a block of the given dims from src to dst, each side with its own element strides. Unit dims are
   dropped and a dim is merged into the inner one where both sides are contiguous across it, so that the
   innermost run is as long as the layouts allow; a run contiguous on both sides is one memcpy. */
static void copy_block(char *dst, const int64_t *dst_st, const char *src, const int64_t *src_st,
                       const int64_t *dims, int rank, size_t es) {
    int64_t d[LATHE_KD_MAX_RANK + 1], ds[LATHE_KD_MAX_RANK + 1], ss[LATHE_KD_MAX_RANK + 1];
    int r = 0;
    /* built inner to outer */
    for (int i = rank - 1; i >= 0; i--) {
        if (dims[i] == 0)
            return;
        if (dims[i] == 1)
            continue;
        if (r > 0 && dst_st[i] == ds[r - 1] * d[r - 1] && src_st[i] == ss[r - 1] * d[r - 1]) {
            d[r - 1] *= dims[i];
            continue;
        }
        d[r] = dims[i];
        ds[r] = dst_st[i];
        ss[r] = src_st[i];
        r++;
    }
    if (r == 0) { /* one element */
        d[0] = 1;
        ds[0] = ss[0] = 1;
        r = 1;
    }
    int64_t len = d[0], dstep = ds[0], sstep = ss[0];
    bool run = dstep == 1 && sstep == 1;
    int64_t idx[LATHE_KD_MAX_RANK + 1] = {0};
    int64_t doff = 0, soff = 0;
    for (;;) {
        char *dp = dst + doff * (int64_t)es;
        const char *sp = src + soff * (int64_t)es;
        if (run) {
            memcpy(dp, sp, (size_t)len * es);
        } else {
            switch (es) {
            case 1:
                for (int64_t i = 0; i < len; i++)
                    ((uint8_t *)dp)[i * dstep] = ((const uint8_t *)sp)[i * sstep];
                break;
            case 4:
                for (int64_t i = 0; i < len; i++)
                    ((uint32_t *)dp)[i * dstep] = ((const uint32_t *)sp)[i * sstep];
                break;
            default:
                for (int64_t i = 0; i < len; i++)
                    ((uint64_t *)dp)[i * dstep] = ((const uint64_t *)sp)[i * sstep];
                break;
            }
        }
        /* the odometer over the outer dims (1 .. r-1, inner to outer) */
        int k = 1;
        for (; k < r; k++) {
            idx[k]++;
            doff += ds[k];
            soff += ss[k];
            if (idx[k] < d[k])
                break;
            doff -= ds[k] * d[k];
            soff -= ss[k] * d[k];
            idx[k] = 0;
        }
        if (k == r)
            return;
    }
}

/* A double as the interpreter converts it to dtype t (C's conversion is undefined out of range):
   truncation, NaN gives 0, i64 saturates, narrower integers wrap. */
static void store_value(void *p, int t, double v) {
    switch (t) {
    case KD_F32: *(float *)p = (float)v; return;
    case KD_F64: *(double *)p = v; return;
    default: break;
    }
    if (isnan(v)) {
        v = 0;
    } else if (t != KD_I64) {
        v = fmod(trunc(v), t == KD_U8 ? 256.0 : 4294967296.0); /* exact, keeps the sign; inf gives NaN */
        if (isnan(v))
            v = 0;
    }
    int64_t i = v >= 9223372036854775807.0 ? INT64_MAX : v <= -9223372036854775808.0 ? INT64_MIN : (int64_t)v;
    switch (t) {
    case KD_I32: *(int32_t *)p = (int32_t)(uint32_t)(uint64_t)i; return;
    case KD_I64: *(int64_t *)p = i; return;
    default: *(uint8_t *)p = (uint8_t)(uint64_t)i; return;
    }
}

static void fill(void *out, int64_t count, size_t es, const void *value) {
    bool zero = true;
    for (size_t i = 0; i < es; i++)
        if (((const uint8_t *)value)[i])
            zero = false;
    if (zero) {
        memset(out, 0, (size_t)count * es);
        return;
    }
    switch (es) {
    case 1: memset(out, *(const uint8_t *)value, (size_t)count); break;
    case 4:
        for (int64_t i = 0; i < count; i++)
            ((uint32_t *)out)[i] = *(const uint32_t *)value;
        break;
    default:
        for (int64_t i = 0; i < count; i++)
            ((uint64_t *)out)[i] = *(const uint64_t *)value;
        break;
    }
}

/* y[i] = x[start + i step] in every dim. */
static void slice(void *out, const void *const *in, int64_t n, const int64_t *desc, size_t es) {
    Dims o = out_dims(desc, n), x = in_dims(desc, 0, n);
    const int64_t *a = LATHE_KD_ATTRS(desc);
    int64_t src_st[LATHE_KD_MAX_RANK], base = 0;
    for (int i = 0; i < o.rank; i++) {
        src_st[i] = x.st[i] * a[LATHE_KA_STEP + i];
        base += a[LATHE_KA_START + i] * x.st[i];
    }
    copy_block(out, o.st, (const char *)in[0] + base * (int64_t)es, src_st, o.d, o.rank, es);
}

/* y = value, then y[start + i step] = x[i] in every dim: slice's inverse. */
static void pad(void *out, const void *const *in, int64_t n, const int64_t *desc, size_t es, int dtype) {
    Dims o = out_dims(desc, n), x = in_dims(desc, 0, n);
    const int64_t *a = LATHE_KD_ATTRS(desc);
    double value;
    memcpy(&value, &a[LATHE_KA_VALUE], sizeof value);
    uint64_t bits = 0;
    store_value(&bits, dtype, value);
    fill(out, numel(&o), es, &bits);
    int64_t dst_st[LATHE_KD_MAX_RANK], base = 0;
    for (int i = 0; i < x.rank; i++) {
        dst_st[i] = o.st[i] * a[LATHE_KA_STEP + i];
        base += a[LATHE_KA_START + i] * o.st[i];
    }
    copy_block((char *)out + base * (int64_t)es, dst_st, in[0], x.st, x.d, x.rank, es);
}

/* Each input copied into its block of the output along axis. */
static void concat(void *out, const void *const *in, int64_t n, const int64_t *desc, size_t es) {
    Dims o = out_dims(desc, n);
    int axis = (int)LATHE_KD_ATTRS(desc)[0];
    int64_t at = 0;
    for (int i = 0; i < LATHE_KD_NINPUTS(desc); i++) {
        Dims x = in_dims(desc, i, n);
        copy_block((char *)out + at * o.st[axis] * (int64_t)es, o.st, in[i], x.st, x.d, x.rank, es);
        at += x.d[axis];
    }
}

/* ---------------------------------------------------------------- gather and scatter_add */

/* A walk over every element of an index tensor in order, keeping the offset into a target tensor (x of
   gather, y of scatter_add) of the element's coordinates in every dim but axis; where the index is larger
   than the target in such a dim, the coordinates past the target's dim make the element fall outside. */
typedef struct Walk {
    Dims idx, tgt;
    int axis, index_dtype;
    const void *index;
    int64_t c[LATHE_KD_MAX_RANK];
    int64_t base;    /* offset in tgt of c with c[axis] = 0 */
    int outside;     /* how many dims (not axis) have c[d] >= tgt.d[d] */
    bool wider;      /* some dim of the index exceeds tgt's */
} Walk;

static void walk_begin(Walk *w, Dims idx, Dims tgt, const int64_t *desc, const void *index) {
    const int64_t *a = LATHE_KD_ATTRS(desc);
    memset(w, 0, sizeof *w);
    w->idx = idx;
    w->tgt = tgt;
    w->axis = (int)a[0];
    w->index_dtype = (int)a[1];
    w->index = index;
    /* the shape rule gives both the same rank */
    for (int d = 0; d < idx.rank; d++) {
        if (d != w->axis && idx.d[d] > tgt.d[d])
            w->wider = true;
        if (d != w->axis && tgt.d[d] == 0)
            w->outside++;
    }
}

/* The target offset of element i (the walk's current one), or -1 when its index is out of range. */
static int64_t walk_target(const Walk *w, int64_t i) {
    int64_t v;
    switch (w->index_dtype) {
    case KD_I32: v = ((const int32_t *)w->index)[i]; break;
    case KD_U8: v = ((const uint8_t *)w->index)[i]; break;
    default: v = ((const int64_t *)w->index)[i]; break;
    }
    if (v < 0 || v >= w->tgt.d[w->axis] || w->outside)
        return -1;
    return w->base + v * w->tgt.st[w->axis];
}

static void walk_next(Walk *w) {
    for (int d = w->idx.rank - 1; d >= 0; d--) {
        int64_t c = ++w->c[d], lim = w->tgt.d[d];
        bool wrap = c == w->idx.d[d];
        if (wrap)
            w->c[d] = 0;
        if (d != w->axis) {
            w->base += wrap ? -(c - 1) * w->tgt.st[d] : w->tgt.st[d];
            if (w->wider)
                w->outside += (w->c[d] >= lim) - (c - 1 >= lim);
        }
        if (!wrap)
            return;
    }
}

/* torch.gather: y[..i..] = x[..index[..i..]..] along axis, 0 where the index is outside [0, dim). */
#define GATHER(T, S)                                                                                    \
    void lathe_k_gather_##S(void *out, const void *const *in, int64_t n, const int64_t *desc) {         \
        Walk w;                                                                                         \
        Dims o = out_dims(desc, n);                                                                     \
        walk_begin(&w, o, in_dims(desc, 0, n), desc, in[1]);                                            \
        const T *x = in[0];                                                                             \
        T *y = out;                                                                                     \
        int64_t count = numel(&o);                                                                      \
        for (int64_t i = 0; i < count; i++, walk_next(&w)) {                                            \
            int64_t at = walk_target(&w, i);                                                            \
            y[i] = at < 0 ? (T)0 : x[at];                                                               \
        }                                                                                               \
    }

/* torch's scatter_add_ into zeros: y[..index[..i..]..] += src[..i..]; an index outside [0, dim) adds
   nothing. */
#define SCATTER_ADD(T, S)                                                                               \
    void lathe_k_scatter_add_##S(void *out, const void *const *in, int64_t n, const int64_t *desc) {    \
        Walk w;                                                                                         \
        Dims o = out_dims(desc, n), idx = in_dims(desc, 0, n);                                          \
        memset(out, 0, (size_t)numel(&o) * sizeof(T));                                                  \
        walk_begin(&w, idx, o, desc, in[0]);                                                            \
        const T *src = in[1];                                                                           \
        T *y = out;                                                                                     \
        int64_t count = numel(&idx);                                                                    \
        for (int64_t i = 0; i < count; i++, walk_next(&w)) {                                            \
            int64_t at = walk_target(&w, i);                                                            \
            if (at >= 0)                                                                                \
                y[at] = (T)(y[at] + src[i]);                                                            \
        }                                                                                               \
    }

/* ---------------------------------------------------------------- one entry point per op and dtype */

#define DATA_KERNELS(T, S, DT)                                                                          \
    void lathe_k_slice_##S(void *out, const void *const *in, int64_t n, const int64_t *desc) {          \
        slice(out, in, n, desc, sizeof(T));                                                             \
    }                                                                                                   \
    void lathe_k_pad_##S(void *out, const void *const *in, int64_t n, const int64_t *desc) {            \
        pad(out, in, n, desc, sizeof(T), DT);                                                           \
    }                                                                                                   \
    void lathe_k_concat_##S(void *out, const void *const *in, int64_t n, const int64_t *desc) {         \
        concat(out, in, n, desc, sizeof(T));                                                            \
    }                                                                                                   \
    GATHER(T, S)                                                                                        \
    SCATTER_ADD(T, S)

DATA_KERNELS(float, f32, KD_F32)
DATA_KERNELS(double, f64, KD_F64)
DATA_KERNELS(int32_t, i32, KD_I32)
DATA_KERNELS(int64_t, i64, KD_I64)
DATA_KERNELS(uint8_t, u8, KD_U8)

/* ---------------------------------------------------------------- random */

/* Uniform [0, 1) floats: element i of stream s in step t of seed k is lathe_philox_uniform(k, s, t, i). */
void lathe_k_random_f32(void *out, const void *const *in, int64_t n, const int64_t *desc) {
    Dims o = out_dims(desc, n);
    uint64_t seed = (uint64_t)*(const int64_t *)in[0], step = (uint64_t)*(const int64_t *)in[1];
    uint32_t stream = (uint32_t)LATHE_KD_ATTRS(desc)[0];
    float *y = out;
    int64_t count = numel(&o);
    for (int64_t i = 0; i < count; i++)
        y[i] = lathe_philox_uniform(seed, stream, step, (uint64_t)i);
}
