/* lib.c: the fixed device library of the call-out ops (pooling and its backward, adaptive average pooling,
   slice, pad, concat, gather, scatter_add, random) and the __global__ wrapper of each call-out node. The
   library computes what runtime/kern_window.c and runtime/kern_data.c compute, bit for bit, from the same
   descriptor (cg_build_desc): each function is a grid-stride loop over its output's elements, and the
   backwards and scatter_add gather each output element's contributions in the CPU's order instead of adding
   them with atomics, so that results are deterministic and equal to the CPU's. */
#include "cu_int.h"

#include <string.h>

/* The helpers every dtype shares. */
static const char lib_common[] =
    "/* ---- the call-out library (codegen/cuda/lib.c): desc is runtime/lathe_kern.h's descriptor */\n"
    "struct LatheCuDims {\n"
    "    int rank;\n"
    "    long long d[8], st[8]; /* dims with N bound, contiguous element strides */\n"
    "    long long numel;\n"
    "};\n"
    "/* A descriptor entry (rank, then 8 dims; -1 is N) with N bound to n. */\n"
    "__device__ __forceinline__ LatheCuDims lathe_cu_dims(const long long *e, long long n) {\n"
    "    LatheCuDims s;\n"
    "    s.rank = e[0] < 0 ? 0 : e[0] > 8 ? 8 : (int)e[0];\n"
    "    s.numel = 1;\n"
    "    for (int i = s.rank - 1; i >= 0; i--) {\n"
    "        s.d[i] = e[1 + i] < 0 ? n : e[1 + i];\n"
    "        s.st[i] = s.numel;\n"
    "        s.numel *= s.d[i];\n"
    "    }\n"
    "    return s;\n"
    "}\n"
    "__device__ __forceinline__ LatheCuDims lathe_cu_out(const long long *desc, long long n) {\n"
    "    return lathe_cu_dims(desc + 1, n);\n"
    "}\n"
    "__device__ __forceinline__ LatheCuDims lathe_cu_in(const long long *desc, int i, long long n) {\n"
    "    return lathe_cu_dims(desc + 10 + 9 * i, n);\n"
    "}\n"
    "__device__ __forceinline__ const long long *lathe_cu_attrs(const long long *desc) {\n"
    "    return desc + 10 + 9 * desc[0];\n"
    "}\n"
    "__device__ __forceinline__ long long lathe_cu_first() {\n"
    "    return (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
    "}\n"
    "__device__ __forceinline__ long long lathe_cu_stride() {\n"
    "    return (long long)gridDim.x * blockDim.x;\n"
    "}\n"
    "/* floor(a / b) and ceil(a / b) for b > 0 */\n"
    "__device__ __forceinline__ long long lathe_cu_floordiv(long long a, long long b) {\n"
    "    return a >= 0 ? a / b : -((-a + b - 1) / b);\n"
    "}\n"
    "__device__ __forceinline__ long long lathe_cu_ceildiv(long long a, long long b) {\n"
    "    return -lathe_cu_floordiv(-a, b);\n"
    "}\n"
    "/* Element i of an index tensor of dtype dt (ir.h's DType number: 2 i32, 4 u8, else i64). */\n"
    "__device__ __forceinline__ long long lathe_cu_index(const void *p, long long dt, long long i) {\n"
    "    return dt == 2 ? (long long)((const int *)p)[i]\n"
    "         : dt == 4 ? (long long)((const unsigned char *)p)[i] : ((const long long *)p)[i];\n"
    "}\n"
    "/* pad's value converted to an integer dtype as the interpreter does: truncated, NaN 0, i64 saturated,\n"
    "   i32 and u8 wrapped (their casts below keep the low bits). */\n"
    "__device__ __forceinline__ long long lathe_cu_int_value(double v, int wide) {\n"
    "    if (v != v)\n"
    "        return 0;\n"
    "    if (wide != 64) {\n"
    "        v = fmod(trunc(v), wide == 8 ? 256.0 : 4294967296.0);\n"
    "        if (v != v)\n"
    "            return 0;\n"
    "    }\n"
    "    return v >= 9223372036854775807.0 ? 9223372036854775807LL\n"
    "         : v <= -9223372036854775808.0 ? -9223372036854775807LL - 1 : (long long)v;\n"
    "}\n"
    "\n"
    "/* The geometry of a window op: the forward op's input x [N,C,H,W] and output y [N,C,OH,OW] (which tensors\n"
    "   of desc: -1 the output, else input i), the window with its stride, padding and dilation, read as\n"
    "   kern_window.c reads them. */\n"
    "struct LatheCuGeo {\n"
    "    long long planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;\n"
    "    bool count_include_pad;\n"
    "};\n"
    "__device__ __forceinline__ LatheCuGeo lathe_cu_geo(const long long *desc, long long n, int xs, int ys) {\n"
    "    const long long *x = desc + (xs < 0 ? 2 : 11 + 9 * xs), *y = desc + (ys < 0 ? 2 : 11 + 9 * ys);\n"
    "    const long long *a = lathe_cu_attrs(desc);\n"
    "    LatheCuGeo g;\n"
    "    g.planes = (x[0] < 0 ? n : x[0]) * x[1];\n"
    "    g.h = x[2], g.w = x[3], g.oh = y[2], g.ow = y[3];\n"
    "    g.kh = a[0] > 0 ? a[0] : 0, g.kw = a[1] > 0 ? a[1] : 0;\n"
    "    g.sh = a[2] > 0 ? a[2] : 1, g.sw = a[3] > 0 ? a[3] : 1;\n"
    "    g.ph = a[4], g.pw = a[5];\n"
    "    g.dh = a[6] > 0 ? a[6] : 1, g.dw = a[7] > 0 ? a[7] : 1;\n"
    "    g.count_include_pad = a[10] != 0;\n"
    "    return g;\n"
    "}\n"
    "/* Average pooling's window on one axis: input cells [lo, hi) and the divisor's count. */\n"
    "struct LatheCuSpan {\n"
    "    long long lo, hi, count;\n"
    "};\n"
    "/* As PyTorch: the window reaches past the padded input only in ceil mode, and those cells never count. */\n"
    "__device__ __forceinline__ LatheCuSpan lathe_cu_avg_span(long long i, long long h, long long k, long long s,\n"
    "                                                         long long p, bool count_include_pad) {\n"
    "    long long lo = i * s - p, hi = lo + k;\n"
    "    hi = hi > h + p ? h + p : hi;\n"
    "    long long padded = hi - lo;\n"
    "    lo = lo < 0 ? 0 : lo;\n"
    "    hi = hi > h ? h : hi;\n"
    "    LatheCuSpan r = {lo, hi, count_include_pad ? padded : hi - lo};\n"
    "    return r;\n"
    "}\n"
    "/* adaptive pooling's window i of oh: [floor(i h / oh), ceil((i + 1) h / oh)) */\n"
    "__device__ __forceinline__ LatheCuSpan lathe_cu_adaptive_span(long long i, long long h, long long oh) {\n"
    "    LatheCuSpan r = {i * h / oh, ((i + 1) * h + oh - 1) / oh, 0};\n"
    "    r.count = r.hi - r.lo;\n"
    "    return r;\n"
    "}\n"
    "__device__ __forceinline__ void lathe_cu_avg_window(const LatheCuGeo *g, bool adaptive, long long oh,\n"
    "                                                    long long ow, LatheCuSpan *sh, LatheCuSpan *sw) {\n"
    "    if (adaptive) {\n"
    "        *sh = lathe_cu_adaptive_span(oh, g->h, g->oh);\n"
    "        *sw = lathe_cu_adaptive_span(ow, g->w, g->ow);\n"
    "    } else {\n"
    "        *sh = lathe_cu_avg_span(oh, g->h, g->kh, g->sh, g->ph, g->count_include_pad);\n"
    "        *sw = lathe_cu_avg_span(ow, g->w, g->kw, g->sw, g->pw, g->count_include_pad);\n"
    "    }\n"
    "}\n"
    "/* The windows that may hold cell i of an axis of size h, [*lo, *hi) (a superset: callers check each). */\n"
    "__device__ __forceinline__ void lathe_cu_windows_at(long long i, long long h, long long oh, long long k,\n"
    "                                                    long long s, long long p, long long d, bool adaptive,\n"
    "                                                    long long *lo, long long *hi) {\n"
    "    if (adaptive) {\n"
    "        *lo = i * oh / h;\n"
    "        *hi = ((i + 1) * oh + h - 1) / h;\n"
    "    } else { /* i in [o s - p, o s - p + (k - 1) d] */\n"
    "        *lo = lathe_cu_ceildiv(i + p - (k - 1) * d, s);\n"
    "        *hi = k > 0 ? lathe_cu_floordiv(i + p, s) + 1 : 0;\n"
    "    }\n"
    "    *lo = *lo < 0 ? 0 : *lo;\n"
    "    *hi = *hi > oh ? oh : *hi;\n"
    "}\n"
    "\n"
    "/* Philox4x32-10 as lathe_philox_uniform (runtime/lathe_kern.h), bit for bit. */\n"
    "__device__ __forceinline__ float lathe_cu_philox_uniform(unsigned long long seed, unsigned stream,\n"
    "                                                        unsigned long long step,\n"
    "                                                        unsigned long long index) {\n"
    "    unsigned c0 = (unsigned)index, c1 = (unsigned)(index >> 32);\n"
    "    unsigned c2 = (unsigned)step, c3 = (unsigned)(step >> 32);\n"
    "    unsigned k0 = (unsigned)seed, k1 = stream ^ (unsigned)(seed >> 32);\n"
    "    for (int round = 0; round < 10; round++) {\n"
    "        unsigned long long p0 = 0xD2511F53ull * c0, p1 = 0xCD9E8D57ull * c2;\n"
    "        unsigned n0 = (unsigned)(p1 >> 32) ^ c1 ^ k0, n2 = (unsigned)(p0 >> 32) ^ c3 ^ k1;\n"
    "        c1 = (unsigned)p1;\n"
    "        c3 = (unsigned)p0;\n"
    "        c0 = n0;\n"
    "        c2 = n2;\n"
    "        k0 += 0x9E3779B9u;\n"
    "        k1 += 0xBB67AE85u;\n"
    "    }\n"
    "    return (float)(c0 >> 8) * (1.0f / 16777216.0f);\n"
    "}\n"
    "/* random: element i of stream s in step t of seed k is philox(k, s, t, i) (kern_data.c) */\n"
    "__device__ __forceinline__ void lathe_cu_random_f32(float *y, const long long *seed,\n"
    "                                                    const long long *step, long long n,\n"
    "                                                    const long long *desc) {\n"
    "    long long count = lathe_cu_out(desc, n).numel;\n"
    "    unsigned long long k = (unsigned long long)*seed, t = (unsigned long long)*step;\n"
    "    unsigned s = (unsigned)lathe_cu_attrs(desc)[0];\n"
    "    for (long long i = lathe_cu_first(); i < count; i += lathe_cu_stride())\n"
    "        y[i] = lathe_cu_philox_uniform(k, s, t, (unsigned long long)i);\n"
    "}\n";

/* The data-movement ops of one dtype: $T the CUDA type, $S the dtype's name, $V pad's value v (a double)
   converted to $T. */
static const char lib_data[] =
    "\n/* slice: y[i] = x[start + i step] in every dim */\n"
    "__device__ __forceinline__ void lathe_cu_slice_$S($T *y, const $T *x, long long n, const long long *desc) {\n"
    "    LatheCuDims o = lathe_cu_out(desc, n), xd = lathe_cu_in(desc, 0, n);\n"
    "    const long long *a = lathe_cu_attrs(desc);\n"
    "    for (long long i = lathe_cu_first(); i < o.numel; i += lathe_cu_stride()) {\n"
    "        long long rest = i, at = 0;\n"
    "        for (int d = o.rank - 1; d >= 0; d--) {\n"
    "            long long c = rest % o.d[d];\n"
    "            rest /= o.d[d];\n"
    "            at += (a[d] + c * a[8 + d]) * xd.st[d];\n"
    "        }\n"
    "        y[i] = x[at];\n"
    "    }\n"
    "}\n"
    "/* pad: y = value, except y[start + i step] = x[i] in every dim */\n"
    "__device__ __forceinline__ void lathe_cu_pad_$S($T *y, const $T *x, long long n, const long long *desc) {\n"
    "    LatheCuDims o = lathe_cu_out(desc, n), xd = lathe_cu_in(desc, 0, n);\n"
    "    const long long *a = lathe_cu_attrs(desc);\n"
    "    double v = __longlong_as_double(a[16]);\n"
    "    $T value = $V;\n"
    "    for (long long i = lathe_cu_first(); i < o.numel; i += lathe_cu_stride()) {\n"
    "        long long rest = i, at = 0;\n"
    "        bool inside = true;\n"
    "        for (int d = o.rank - 1; d >= 0; d--) {\n"
    "            long long c = rest % o.d[d], step = a[8 + d] > 0 ? a[8 + d] : 1;\n"
    "            rest /= o.d[d];\n"
    "            c -= a[d];\n"
    "            if (c < 0 || c % step != 0 || c / step >= xd.d[d])\n"
    "                inside = false;\n"
    "            else\n"
    "                at += c / step * xd.st[d];\n"
    "        }\n"
    "        y[i] = inside ? x[at] : value;\n"
    "    }\n"
    "}\n"
    "/* concat: the inputs xs[0 .. desc[0]) one after another along the axis */\n"
    "__device__ __forceinline__ void lathe_cu_concat_$S($T *y, const $T *const *xs, long long n,\n"
    "                                                   const long long *desc) {\n"
    "    LatheCuDims o = lathe_cu_out(desc, n);\n"
    "    int axis = (int)lathe_cu_attrs(desc)[0];\n"
    "    long long inner = o.st[axis], len = o.d[axis];\n"
    "    for (long long i = lathe_cu_first(); i < o.numel; i += lathe_cu_stride()) {\n"
    "        long long j = i % inner, c = i / inner % len, row = i / inner / len, at = 0;\n"
    "        int k = 0;\n"
    "        while (c >= at + desc[11 + 9 * k + axis])\n"
    "            at += desc[11 + 9 * k++ + axis];\n"
    "        y[i] = xs[k][(row * desc[11 + 9 * k + axis] + c - at) * inner + j];\n"
    "    }\n"
    "}\n"
    "/* gather: y[..i..] = x[..index[..i..]..] along the axis, 0 where the index is outside x */\n"
    "__device__ __forceinline__ void lathe_cu_gather_$S($T *y, const $T *x, const void *index, long long n,\n"
    "                                                   const long long *desc) {\n"
    "    LatheCuDims o = lathe_cu_out(desc, n), xd = lathe_cu_in(desc, 0, n);\n"
    "    const long long *a = lathe_cu_attrs(desc);\n"
    "    int axis = (int)a[0];\n"
    "    for (long long i = lathe_cu_first(); i < o.numel; i += lathe_cu_stride()) {\n"
    "        long long v = lathe_cu_index(index, a[1], i), rest = i, at = 0;\n"
    "        bool inside = v >= 0 && v < xd.d[axis];\n"
    "        for (int d = o.rank - 1; d >= 0; d--) {\n"
    "            long long c = rest % o.d[d];\n"
    "            rest /= o.d[d];\n"
    "            if (d == axis)\n"
    "                c = v;\n"
    "            else if (c >= xd.d[d])\n"
    "                inside = false;\n"
    "            at += c * xd.st[d];\n"
    "        }\n"
    "        y[i] = inside ? x[at] : ($T)0;\n"
    "    }\n"
    "}\n"
    "/* scatter_add into zeros: y[..index[..i..]..] += src[..i..]. Each element of y sums the sources that land\n"
    "   on it in the index's order, as the CPU's walk adds them. */\n"
    "__device__ __forceinline__ void lathe_cu_scatter_add_$S($T *y, const void *index, const $T *src,\n"
    "                                                        long long n, const long long *desc) {\n"
    "    LatheCuDims o = lathe_cu_out(desc, n), id = lathe_cu_in(desc, 0, n);\n"
    "    const long long *a = lathe_cu_attrs(desc);\n"
    "    int axis = (int)a[0];\n"
    "    for (long long i = lathe_cu_first(); i < o.numel; i += lathe_cu_stride()) {\n"
    "        long long rest = i, base = 0, target = 0;\n"
    "        bool inside = true;\n"
    "        for (int d = o.rank - 1; d >= 0; d--) {\n"
    "            long long c = rest % o.d[d];\n"
    "            rest /= o.d[d];\n"
    "            if (d == axis)\n"
    "                target = c;\n"
    "            else if (c >= id.d[d])\n"
    "                inside = false;\n"
    "            else\n"
    "                base += c * id.st[d];\n"
    "        }\n"
    "        $T sum = 0;\n"
    "        for (long long t = 0; inside && t < id.d[axis]; t++) {\n"
    "            long long j = base + t * id.st[axis];\n"
    "            if (lathe_cu_index(index, a[1], j) == target)\n"
    "                sum = ($T)(sum + src[j]);\n"
    "        }\n"
    "        y[i] = sum;\n"
    "    }\n"
    "}\n";

/* The pooling ops of one float dtype: $T, $S as above, $NINF and $NAN its -inf and quiet NaN. */
static const char lib_window[] =
    "\n/* max pooling (padding -inf): each window's maximum; NaN when it holds one, -inf when it holds no cell */\n"
    "__device__ __forceinline__ void lathe_cu_max_pool2d_$S($T *y, const $T *x, long long n,\n"
    "                                                       const long long *desc) {\n"
    "    LatheCuGeo g = lathe_cu_geo(desc, n, 0, -1);\n"
    "    long long count = g.planes * g.oh * g.ow;\n"
    "    for (long long i = lathe_cu_first(); i < count; i += lathe_cu_stride()) {\n"
    "        long long ow = i % g.ow, oh = i / g.ow % g.oh, h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;\n"
    "        const $T *xp = x + i / (g.oh * g.ow) * g.h * g.w;\n"
    "        $T m = $NINF;\n"
    "        bool nan = false;\n"
    "        for (long long kh = 0; kh < g.kh; kh++) {\n"
    "            long long ih = h0 + kh * g.dh;\n"
    "            for (long long kw = 0; kw < g.kw && ih >= 0 && ih < g.h; kw++) {\n"
    "                long long iw = w0 + kw * g.dw;\n"
    "                if (iw < 0 || iw >= g.w)\n"
    "                    continue;\n"
    "                $T v = xp[ih * g.w + iw];\n"
    "                m = v > m ? v : m;\n"
    "                nan |= v != v;\n"
    "            }\n"
    "        }\n"
    "        y[i] = nan ? $NAN : m;\n"
    "    }\n"
    "}\n"
    "/* The index in plane xp of window (oh, ow)'s first maximum in row-major order (the first NaN when it holds\n"
    "   one), -1 when it holds no cell. */\n"
    "__device__ __forceinline__ long long lathe_cu_max_first_$S(const LatheCuGeo *g, const $T *xp, long long oh,\n"
    "                                                          long long ow) {\n"
    "    long long h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw, best = -1;\n"
    "    $T m = 0;\n"
    "    bool nan = false;\n"
    "    for (long long kh = 0; kh < g->kh; kh++) {\n"
    "        long long ih = h0 + kh * g->dh;\n"
    "        for (long long kw = 0; kw < g->kw && ih >= 0 && ih < g->h; kw++) {\n"
    "            long long iw = w0 + kw * g->dw;\n"
    "            if (iw < 0 || iw >= g->w)\n"
    "                continue;\n"
    "            $T v = xp[ih * g->w + iw];\n"
    "            if (best < 0 || (!nan && (v > m || v != v))) {\n"
    "                best = ih * g->w + iw;\n"
    "                m = v;\n"
    "                nan = v != v;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "    return best;\n"
    "}\n"
    "/* (x, gy) -> gx: each cell sums the gy of the windows whose first maximum it is, in the windows' order */\n"
    "__device__ __forceinline__ void lathe_cu_max_pool2d_bwd_$S($T *gx, const $T *x, const $T *gy, long long n,\n"
    "                                                           const long long *desc) {\n"
    "    LatheCuGeo g = lathe_cu_geo(desc, n, 0, 1);\n"
    "    long long count = g.planes * g.h * g.w;\n"
    "    for (long long i = lathe_cu_first(); i < count; i += lathe_cu_stride()) {\n"
    "        long long iw = i % g.w, ih = i / g.w % g.h, p = i / (g.h * g.w), oh0, oh1, ow0, ow1;\n"
    "        lathe_cu_windows_at(ih, g.h, g.oh, g.kh, g.sh, g.ph, g.dh, false, &oh0, &oh1);\n"
    "        lathe_cu_windows_at(iw, g.w, g.ow, g.kw, g.sw, g.pw, g.dw, false, &ow0, &ow1);\n"
    "        const $T *xp = x + p * g.h * g.w, *gyp = gy + p * g.oh * g.ow;\n"
    "        $T sum = 0;\n"
    "        for (long long oh = oh0; oh < oh1; oh++)\n"
    "            for (long long ow = ow0; ow < ow1; ow++)\n"
    "                if (lathe_cu_max_first_$S(&g, xp, oh, ow) == ih * g.w + iw)\n"
    "                    sum += gyp[oh * g.ow + ow];\n"
    "        gx[i] = sum;\n"
    "    }\n"
    "}\n"
    "/* average pooling, plain or adaptive: each window's sum (in double) / its divisor; 0 for a window without\n"
    "   cells */\n"
    "__device__ __forceinline__ void lathe_cu_avg_pool_$S($T *y, const $T *x, long long n, const long long *desc,\n"
    "                                                     bool adaptive) {\n"
    "    LatheCuGeo g = lathe_cu_geo(desc, n, 0, -1);\n"
    "    long long count = g.planes * g.oh * g.ow;\n"
    "    for (long long i = lathe_cu_first(); i < count; i += lathe_cu_stride()) {\n"
    "        long long ow = i % g.ow, oh = i / g.ow % g.oh;\n"
    "        const $T *xp = x + i / (g.oh * g.ow) * g.h * g.w;\n"
    "        LatheCuSpan sh, sw;\n"
    "        lathe_cu_avg_window(&g, adaptive, oh, ow, &sh, &sw);\n"
    "        double sum = 0;\n"
    "        for (long long ih = sh.lo; ih < sh.hi; ih++)\n"
    "            for (long long iw = sw.lo; iw < sw.hi; iw++)\n"
    "                sum += xp[ih * g.w + iw];\n"
    "        y[i] = sh.lo < sh.hi && sw.lo < sw.hi ? ($T)(sum / (double)(sh.count * sw.count)) : ($T)0;\n"
    "    }\n"
    "}\n"
    "/* its adjoint, gy -> gx: each cell sums gy / divisor over the windows that hold it, in the windows' order */\n"
    "__device__ __forceinline__ void lathe_cu_avg_pool_bwd_$S($T *gx, const $T *gy, long long n,\n"
    "                                                         const long long *desc, bool adaptive) {\n"
    "    LatheCuGeo g = lathe_cu_geo(desc, n, -1, 0);\n"
    "    long long count = g.planes * g.h * g.w;\n"
    "    for (long long i = lathe_cu_first(); i < count; i += lathe_cu_stride()) {\n"
    "        long long iw = i % g.w, ih = i / g.w % g.h, oh0, oh1, ow0, ow1;\n"
    "        lathe_cu_windows_at(ih, g.h, g.oh, g.kh, g.sh, g.ph, 1, adaptive, &oh0, &oh1);\n"
    "        lathe_cu_windows_at(iw, g.w, g.ow, g.kw, g.sw, g.pw, 1, adaptive, &ow0, &ow1);\n"
    "        const $T *gyp = gy + i / (g.h * g.w) * g.oh * g.ow;\n"
    "        $T sum = 0;\n"
    "        for (long long oh = oh0; oh < oh1; oh++)\n"
    "            for (long long ow = ow0; ow < ow1; ow++) {\n"
    "                LatheCuSpan sh, sw;\n"
    "                lathe_cu_avg_window(&g, adaptive, oh, ow, &sh, &sw);\n"
    "                if (ih >= sh.lo && ih < sh.hi && iw >= sw.lo && iw < sw.hi)\n"
    "                    sum += ($T)(gyp[oh * g.ow + ow] / (double)(sh.count * sw.count));\n"
    "            }\n"
    "        gx[i] = sum;\n"
    "    }\n"
    "}\n"
    "__device__ __forceinline__ void lathe_cu_avg_pool2d_$S($T *y, const $T *x, long long n,\n"
    "                                                       const long long *desc) {\n"
    "    lathe_cu_avg_pool_$S(y, x, n, desc, false);\n"
    "}\n"
    "__device__ __forceinline__ void lathe_cu_avg_pool2d_bwd_$S($T *gx, const $T *gy, long long n,\n"
    "                                                           const long long *desc) {\n"
    "    lathe_cu_avg_pool_bwd_$S(gx, gy, n, desc, false);\n"
    "}\n"
    "__device__ __forceinline__ void lathe_cu_adaptive_avg_pool2d_$S($T *y, const $T *x, long long n,\n"
    "                                                                const long long *desc) {\n"
    "    lathe_cu_avg_pool_$S(y, x, n, desc, true);\n"
    "}\n"
    "__device__ __forceinline__ void lathe_cu_adaptive_avg_pool2d_bwd_$S($T *gx, const $T *gy, long long n,\n"
    "                                                                    const long long *desc) {\n"
    "    lathe_cu_avg_pool_bwd_$S(gx, gy, n, desc, true);\n"
    "}\n";

/* What the templates' placeholders stand for in one dtype. */
typedef struct LibDtype {
    DType dt;
    const char *value; /* $V: pad's value v as the dtype (kern_data.c's store_value) */
    const char *ninf, *nan;
} LibDtype;

static const LibDtype lib_dtypes[] = {
    {DT_F32, "(float)v", "__int_as_float((int)0xff800000u)", "__int_as_float(0x7fc00000)"},
    {DT_F64, "v", "__longlong_as_double((long long)0xfff0000000000000ull)",
     "__longlong_as_double(0x7ff8000000000000ll)"},
    {DT_I32, "(int)(unsigned long long)lathe_cu_int_value(v, 32)", NULL, NULL},
    {DT_I64, "lathe_cu_int_value(v, 64)", NULL, NULL},
    {DT_U8, "(unsigned char)(unsigned long long)lathe_cu_int_value(v, 8)", NULL, NULL},
};

/* tmpl with its placeholders replaced by t's. */
static void lib_instantiate(CuBuf *b, const char *tmpl, const LibDtype *t) {
    static const char *const keys[] = {"$T", "$S", "$V", "$NINF", "$NAN"};
    const char *vals[] = {cu_type(t->dt), ir_dtype_name(t->dt), t->value, t->ninf, t->nan};
    for (const char *p = tmpl; *p;) {
        const char *q = p;
        while (*q && *q != '$')
            q++;
        cu_printf(b, "%.*s", (int)(q - p), p);
        p = q;
        if (!*p)
            break;
        int k = -1; /* no key is a prefix of another */
        for (int i = 0; i < (int)(sizeof keys / sizeof *keys) && k < 0; i++)
            if (strncmp(p, keys[i], strlen(keys[i])) == 0)
                k = i;
        if (k < 0 || !vals[k])
            LATHE_UNREACHABLE("lib.c: a placeholder without a value");
        cu_printf(b, "%s", vals[k]);
        p += strlen(keys[k]);
    }
}

void cu_library_source(CuBuf *b) {
    cu_printf(b, "%s", lib_common);
    for (size_t i = 0; i < sizeof lib_dtypes / sizeof *lib_dtypes; i++) {
        lib_instantiate(b, lib_data, &lib_dtypes[i]);
        if (lib_dtypes[i].ninf)
            lib_instantiate(b, lib_window, &lib_dtypes[i]);
    }
}

/* Whether the library has a function for nd's op and dtype. */
static bool lib_has(const Node *nd) {
    switch (nd->op) {
    case OP_MAX_POOL2D: case OP_MAX_POOL2D_BWD: case OP_AVG_POOL2D: case OP_AVG_POOL2D_BWD:
    case OP_ADAPTIVE_AVG_POOL2D: case OP_ADAPTIVE_AVG_POOL2D_BWD:
        return ir_dtype_is_float(nd->dtype);
    case OP_SLICE: case OP_PAD: case OP_CONCAT: case OP_GATHER: case OP_SCATTER_ADD: return true;
    case OP_RANDOM: return nd->dtype == DT_F32;
    default: return false; /* the convolutions are GEMMs (gemm.c) */
    }
}

bool cu_emit_callout(CuKernel *ck) {
    const Node *nd = ck->k->root;
    if (!lib_has(nd)) {
        diag_error(ck->d, nd->loc, "CUDA: no device library function for '%s' of %s", ir_op_name(nd->op),
                   ir_dtype_name(nd->dtype));
        return false;
    }
    int bufs[IR_MAX_CONCAT + 1];
    bufs[0] = cg_buf_index(ck->k, nd);
    for (int i = 0; i < nd->ninputs; i++)
        bufs[1 + i] = cg_buf_index(ck->k, nd->inputs[i]);
    for (int i = 0; i <= nd->ninputs; i++)
        if (bufs[i] < 0 || (i > 0 && bufs[i] == bufs[0]))
            LATHE_UNREACHABLE("a call-out's output and inputs have buffers of their own");

    int64_t desc[CG_DESC_MAX];
    int len = cg_build_desc(nd, desc);
    cu_printf(ck->src, "__constant__ long long %s_desc[%d] = {", ck->name, len);
    for (int i = 0; i < len; i++)
        cu_printf(ck->src, "%s%lldll", i ? ", " : "", (long long)desc[i]);
    cu_printf(ck->src, "};\n");

    cu_signature(ck, 256);
    cu_line(ck, nd);
    const char *fn = ir_op_name(nd->op), *dt = ir_dtype_name(nd->dtype);
    if (nd->op == OP_CONCAT) { /* its inputs as an array */
        cu_printf(ck->src, "    const %s *xs[%d] = {", cu_type(nd->dtype), nd->ninputs);
        for (int i = 1; i <= nd->ninputs; i++)
            cu_printf(ck->src, "%sb%d", i > 1 ? ", " : "", bufs[i]);
        cu_printf(ck->src, "};\n    lathe_cu_%s_%s(b%d, xs, n, %s_desc);\n}\n", fn, dt, bufs[0], ck->name);
    } else {
        cu_printf(ck->src, "    lathe_cu_%s_%s(b%d", fn, dt, bufs[0]);
        for (int i = 1; i <= nd->ninputs; i++)
            cu_printf(ck->src, ", b%d", bufs[i]);
        cu_printf(ck->src, ", n, %s_desc);\n}\n", ck->name);
    }
    /* one thread an output element */
    ck->items_c = ir_shape_numel_per_n(&nd->shape);
    ck->items_p = ir_shape_count_n(&nd->shape);
    ck->per_block = 256;
    return true;
}
