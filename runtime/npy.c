/* npy.c: NumPy's .npy arrays (numpy.lib.format): the magic "\x93NUMPY", a version byte pair (1.0, 2.0 or 3.0),
   the header's length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0), a Python dict literal
   {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), } and the values in C order. The
   npy(x, y, scale) source reads x (the first dimension counts the samples) and optional labels y. Plain or
   gzip files; every mistake names the file and the byte offset. */
#include "rt.h"
#include "budget.h"

#include <stdlib.h>
#include <string.h>

/* 16 GiB, as for IDX and text */
#define NPY_MAX_BYTES (1ll << 34)

typedef struct Header {
    const char *path;
    const uint8_t *s;
    int64_t at, end; /* the dict's text is s[at..end); offsets are the file's */
    RtErr *e;
} Header;

static int bad(Header *h, const char *what) {
    return rt_errf(h->e, "%s: byte %lld: %s", h->path, (long long)h->at, what);
}

static void skip_space(Header *h) {
    while (h->at < h->end && (h->s[h->at] == ' ' || h->s[h->at] == '\t' || h->s[h->at] == '\n' || h->s[h->at] == '\r'))
        h->at++;
}

static bool accept(Header *h, char c) {
    skip_space(h);
    if (h->at < h->end && h->s[h->at] == c) {
        h->at++;
        return true;
    }
    return false;
}

/* A Python string literal in quotes ' or " (no escapes: the header's keys and dtypes need none) into buf. */
static int string(Header *h, char *buf, size_t n) {
    skip_space(h);
    if (h->at >= h->end || (h->s[h->at] != '\'' && h->s[h->at] != '"'))
        return bad(h, "expected a quoted string in the header dict");
    char q = (char)h->s[h->at];
    int64_t start = ++h->at;
    while (h->at < h->end && h->s[h->at] != q && h->s[h->at] != '\\')
        h->at++;
    if (h->at >= h->end || h->s[h->at] != q)
        return h->at = start - 1, bad(h, "unterminated or escaped string in the header dict");
    size_t len = (size_t)(h->at - start);
    if (len >= n)
        return h->at = start - 1, bad(h, "string too long in the header dict");
    memcpy(buf, h->s + start, len);
    buf[len] = 0;
    h->at++;
    return RT_OK;
}

static int word(Header *h, const char *w) {
    skip_space(h);
    size_t n = strlen(w);
    if (h->end - h->at >= (int64_t)n && memcmp(h->s + h->at, w, n) == 0) {
        h->at += (int64_t)n;
        return RT_OK;
    }
    return RT_ERR;
}

/* ('descr'): the dtypes read, as numpy writes them on a little-endian machine */
static int descr(Header *h, RtDType *t) {
    static const struct {
        const char *name;
        RtDType t;
    } known[] = {{"<f4", RT_F32}, {"<f8", RT_F64}, {"<i4", RT_I32}, {"<i8", RT_I64}, {"|u1", RT_U8},
                 {"<u1", RT_U8},  {"=u1", RT_U8},  {"u1", RT_U8}};
    int64_t at = h->at;
    char buf[64];
    if (string(h, buf, sizeof buf) != RT_OK)
        return RT_ERR;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(buf, known[i].name) == 0) {
            *t = known[i].t;
            return RT_OK;
        }
    h->at = at;
    skip_space(h);
    char msg[256];
    snprintf(msg, sizeof msg, "dtype '%s' is not read (float32 <f4, float64 <f8, int32 <i4, int64 <i8, uint8 |u1%s)",
             buf, buf[0] == '>' ? "; this one is big-endian: save arr.astype(arr.dtype.newbyteorder('<'))" : "");
    return bad(h, msg);
}

/* ('shape'): a tuple of non-negative ints, (), (3,) or (3, 4); Python 2 wrote longs as 3L */
static int shape(Header *h, RtNpy *out) {
    if (!accept(h, '('))
        return skip_space(h), bad(h, "shape must be a tuple such as (60000, 28, 28)");
    out->ndims = 0;
    while (!accept(h, ')')) {
        skip_space(h);
        if (h->at >= h->end || h->s[h->at] < '0' || h->s[h->at] > '9')
            return bad(h, "expected a dimension (a non-negative integer) or ')' in shape");
        if (out->ndims == RT_NPY_MAX_DIMS)
            return bad(h, "shape has more than 8 dimensions");
        int64_t v = 0;
        while (h->at < h->end && h->s[h->at] >= '0' && h->s[h->at] <= '9') {
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, h->s[h->at] - '0', &v))
                return bad(h, "dimension too large in shape");
            h->at++;
        }
        if (h->at < h->end && h->s[h->at] == 'L')
            h->at++;
        out->dims[out->ndims++] = v;
        if (!accept(h, ',')) {
            if (!accept(h, ')'))
                return skip_space(h), bad(h, "expected ',' or ')' in shape");
            break;
        }
    }
    return RT_OK;
}

/* The dict: each of the three keys once, in any order. */
static int header_dict(Header *h, RtNpy *out) {
    int64_t start = h->at;
    if (!accept(h, '{'))
        return skip_space(h), bad(h, "the header is not a dict (expected '{')");
    bool seen[3] = {false, false, false}, fortran = false;
    while (!accept(h, '}')) {
        skip_space(h);
        int64_t key_at = h->at;
        char key[32];
        if (string(h, key, sizeof key) != RT_OK)
            return RT_ERR;
        int k = strcmp(key, "descr") == 0           ? 0
                : strcmp(key, "fortran_order") == 0 ? 1
                : strcmp(key, "shape") == 0         ? 2
                                                    : -1;
        if (k < 0 || seen[k]) {
            h->at = key_at;
            char msg[160];
            snprintf(msg, sizeof msg, "%s key '%s' in the header dict (it holds descr, fortran_order and shape)",
                     k < 0 ? "unknown" : "repeated", key);
            return bad(h, msg);
        }
        seen[k] = true;
        if (!accept(h, ':'))
            return skip_space(h), bad(h, "expected ':' after a key of the header dict");
        skip_space(h);
        int64_t value_at = h->at;
        int rc = RT_OK;
        if (k == 0)
            rc = descr(h, &out->dtype);
        else if (k == 2)
            rc = shape(h, out);
        else if (word(h, "True") == RT_OK)
            fortran = true;
        else if (word(h, "False") != RT_OK)
            rc = bad(h, "fortran_order must be True or False");
        if (rc != RT_OK)
            return RT_ERR;
        if (fortran) {
            h->at = value_at;
            return bad(h, "fortran_order is True: only C order is read (save np.ascontiguousarray(arr))");
        }
        if (!accept(h, ',')) {
            if (!accept(h, '}'))
                return skip_space(h), bad(h, "expected ',' or '}' in the header dict");
            break;
        }
    }
    skip_space(h);
    if (h->at != h->end)
        return bad(h, "unexpected text after the header dict");
    static const char *const names[3] = {"descr", "fortran_order", "shape"};
    for (int k = 0; k < 3; k++)
        if (!seen[k]) {
            char msg[64];
            snprintf(msg, sizeof msg, "header dict has no '%s'", names[k]);
            h->at = start;
            return bad(h, msg);
        }
    return RT_OK;
}

static uint32_t le(const uint8_t *p, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int parse(const char *path, uint8_t *buf, int64_t size, RtNpy *out, RtErr *e) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (size == 0)
        return rt_errf(e, "%s: empty file (expected a .npy header)", path);
    if (memcmp(buf, magic, (size_t)(size < 6 ? size : 6)) != 0)
        return rt_errf(e, "%s: byte 0: bad magic (a .npy file starts with \\x93NUMPY)", path);
    if (size < 10)
        return rt_errf(e, "%s: truncated at byte offset %lld: the .npy magic, version and header length need 10 "
                       "bytes", path, (long long)size);
    int major = buf[6], minor = buf[7];
    if (major < 1 || major > 3 || minor != 0)
        return rt_errf(e, "%s: byte 6: format version %d.%d (this runtime reads 1.0, 2.0 and 3.0)", path, major,
                       minor);
    int lenbytes = major == 1 ? 2 : 4;
    int64_t hstart = 8 + lenbytes;
    if (size < hstart)
        return rt_errf(e, "%s: truncated at byte offset %lld: the header length needs %d bytes", path,
                       (long long)size, lenbytes);
    int64_t hlen = le(buf + 8, lenbytes);
    if (size < hstart + hlen)
        return rt_errf(e, "%s: truncated at byte offset %lld: the header declares %lld bytes from byte %lld", path,
                       (long long)size, (long long)hlen, (long long)hstart);
    Header h = {.path = path, .s = buf, .at = hstart, .end = hstart + hlen, .e = e};
    if (header_dict(&h, out) != RT_OK)
        return RT_ERR;
    int64_t data = hstart + hlen, total = 1, bytes;
    for (int i = 0; i < out->ndims; i++)
        if (__builtin_mul_overflow(total, out->dims[i], &total))
            total = -1;
    if (total < 0 || __builtin_mul_overflow(total, (int64_t)rt_dtype_size(out->dtype), &bytes) || bytes > NPY_MAX_BYTES)
        return rt_errf(e, "%s: byte %lld: the shape makes the data larger than %lld bytes", path, (long long)hstart,
                       (long long)NPY_MAX_BYTES);
    if (size - data < bytes)
        return rt_errf(e, "%s: truncated at byte offset %lld: expected %lld bytes of data after the header", path,
                       (long long)size, (long long)bytes);
    if (size - data > bytes)
        return rt_errf(e, "%s: unexpected data at byte offset %lld, after the %lld values the header declares", path,
                       (long long)(data + bytes), (long long)total);
    out->count = out->ndims ? out->dims[0] : 1;
    out->per_item = 1;
    for (int i = 1; i < out->ndims; i++)
        out->per_item *= out->dims[i];
    out->offset = data;
    return RT_OK;
}

static int read_npy(const char *path, RtNpy *out, RtErr *e) {
    uint8_t *buf;
    int64_t size;
    if (rt_read_file(path, NPY_MAX_BYTES + (1 << 20), &buf, &size, e) != RT_OK)
        return RT_ERR;
    if (parse(path, buf, size, out, e) != RT_OK) {
        free(buf);
        return RT_ERR;
    }
    /* the values to the front, so that they are aligned as malloc aligns */
    size_t bytes = (size_t)(size - out->offset);
    memmove(buf, buf + out->offset, bytes);
    uint8_t *shrunk = realloc(buf, bytes ? bytes : 1);
    if (shrunk)
        rt_budget_give(size + 1 - (int64_t)bytes);
    out->data = shrunk ? shrunk : buf;
    // cppcheck-suppress memleak ; buf or its shrunk copy is kept in out->data, which the caller frees
    return RT_OK;
}

int rt_npy_read(const char *path, RtNpy *out, RtErr *e) {
    memset(out, 0, sizeof *out);
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1)
        return rt_errf(e, "%s: .npy files are read on little-endian machines only", path);
    RtBudget b;
    if (rt_budget_begin(&b, "NPY file", e) != RT_OK)
        return RT_ERR;
    int rc = read_npy(path, out, e);
    rt_budget_end(&b);
    return rc;
}

int rt_npy_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    RtNpy x, y = {0};
    if (rt_npy_read(d->images_path, &x, e) != RT_OK)
        return RT_ERR;
    d->images = x.data;
    d->images_dtype = x.dtype;
    if (x.ndims == 0)
        return rt_errf(e, "%s: x is a scalar (shape ()); its first dimension must count the samples",
                       d->images_path);
    if (x.count == 0)
        return rt_errf(e, "%s: no samples (shape (0, ...))", d->images_path);
    d->count = x.count;
    d->per_sample = x.per_item;
    if (!spec->labels)
        return RT_OK;
    if (rt_npy_read(d->labels_path, &y, e) != RT_OK)
        return RT_ERR;
    d->labels = y.data;
    d->labels_dtype = y.dtype;
    d->labels_offset = y.offset;
    if (y.ndims == 0 || y.count != x.count)
        return rt_errf(e, "%s has %lld samples but %s has %lld labels (its shape's first dimension)", d->images_path,
                       (long long)x.count, d->labels_path, y.ndims ? (long long)y.count : 0ll);
    d->per_label = y.per_item;
    /* floats are values to regress on; integers are class indices */
    d->regression = spec->regression || y.dtype == RT_F32 || y.dtype == RT_F64;
    return RT_OK;
}
