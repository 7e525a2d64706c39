/* idx.c: reads IDX files (the MNIST format: a big-endian magic 0x000008NN, NN dimensions of 4 bytes, then
   unsigned bytes; 08 is the type byte of u8, the only type read), plain or gzip through zlib, whose gzread
   reads both. Every size read from the file is checked before it is trusted, and the buffer grows only as
   data actually arrives, so that a header claiming huge dimensions fails as a truncated file rather than as
   a huge allocation. */
#include "rt.h"
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* 16 GiB: far beyond any dataset this runtime loads into memory */
#define IDX_MAX_BYTES (1ll << 34)
#define IDX_CHUNK (1 << 20)

/* zlib's message without the "<fd:3>: " that it puts before it */
static const char *gz_reason(gzFile gz) {
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum), *colon = strstr(msg, ": ");
    return errnum == Z_ERRNO ? strerror(errno) : colon ? colon + 2 : msg;
}

/* Reads up to len bytes; returns the count read, or -1 with e filled. */
static int64_t read_bytes(gzFile gz, const char *path, int64_t offset, uint8_t *buf, int64_t len, RtErr *e) {
    int64_t got = 0;
    while (got < len) {
        int64_t want = len - got < IDX_CHUNK ? len - got : IDX_CHUNK;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0)
            return rt_errf(e, "%s: read error at byte offset %lld: %s", path, (long long)(offset + got),
                           gz_reason(gz));
        if (r == 0) {
            /* zlib reports a gzip stream cut short as the end of the data with an error set */
            int errnum = Z_OK;
            gzerror(gz, &errnum);
            if (errnum != Z_OK)
                return rt_errf(e, "%s: truncated at byte offset %lld of the uncompressed data: %s", path,
                               (long long)(offset + got), gz_reason(gz));
            break;
        }
        got += r;
    }
    return got;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int read_payload(gzFile gz, const char *path, int64_t offset, int64_t total, RtIdx *out, RtErr *e) {
    int64_t cap = total < IDX_CHUNK ? total : IDX_CHUNK, got = 0;
    uint8_t *buf = rt_budget_malloc((size_t)cap, path, "the IDX data", e);
    if (!buf)
        return RT_ERR;
    while (got < total) {
        if (got == cap) {
            int64_t old = cap;
            cap = cap * 2 < total ? cap * 2 : total;
            uint8_t *nb = rt_budget_realloc(buf, (size_t)old, (size_t)cap, path, "the IDX data", e);
            if (!nb) {
                free(buf);
                return RT_ERR;
            }
            buf = nb;
        }
        int64_t r = read_bytes(gz, path, offset + got, buf + got, cap - got, e);
        if (r < 0) {
            free(buf);
            return RT_ERR;
        }
        got += r;
        if (got < cap)
            break;
    }
    if (got < total) {
        free(buf);
        return rt_errf(e, "%s: truncated at byte offset %lld: expected %lld bytes of data after the header", path,
                       (long long)(offset + got), (long long)total);
    }
    uint8_t extra;
    int64_t r = read_bytes(gz, path, offset + total, &extra, 1, e);
    if (r != 0) {
        free(buf);
        return r < 0 ? RT_ERR
                     : rt_errf(e, "%s: unexpected data at byte offset %lld, after the %lld items the header declares",
                               path, (long long)(offset + total), (long long)out->count);
    }
    out->data = buf;
    return RT_OK;
}

static int read_idx(gzFile gz, const char *path, int min_dims, int max_dims, RtIdx *out, RtErr *e) {
    uint8_t head[4 + 4 * RT_IDX_MAX_DIMS];
    int64_t r = read_bytes(gz, path, 0, head, 4, e);
    if (r < 0)
        return RT_ERR;
    if (r == 0)
        return rt_errf(e, "%s: empty file (expected an IDX header)", path);
    if (r < 4)
        return rt_errf(e, "%s: truncated at byte offset %lld: the IDX magic needs 4 bytes", path, (long long)r);
    uint32_t got = be32(head);
    int ndims = (int)(got & 0xff);
    if ((got & ~0xffu) != 0x800 || ndims < min_dims || ndims > max_dims) {
        if (min_dims == max_dims)
            return rt_errf(e, "%s: bad magic 0x%08x at byte offset 0 (expected 0x%08x, IDX labels: u8 [count])", path,
                           got, 0x800u + (unsigned)min_dims);
        return rt_errf(e, "%s: bad magic 0x%08x at byte offset 0 (expected 0x%08x to 0x%08x, IDX images: u8 [count, "
                       "d1, ...] with %d to %d dimensions after the count)", path, got, 0x800u + (unsigned)min_dims,
                       0x800u + (unsigned)max_dims, min_dims - 1, max_dims - 1);
    }
    r = read_bytes(gz, path, 4, head + 4, 4 * ndims, e);
    if (r < 0)
        return RT_ERR;
    if (r < 4 * ndims)
        return rt_errf(e, "%s: truncated at byte offset %lld: the header declares %d dimensions of 4 bytes", path,
                       (long long)(4 + r), ndims);
    out->ndims = ndims;
    int64_t total = 1;
    for (int i = 0; i < ndims; i++) {
        out->dims[i] = be32(head + 4 + 4 * i);
        if (__builtin_mul_overflow(total, out->dims[i], &total) || total > IDX_MAX_BYTES)
            return rt_errf(e, "%s: dimension %d (%lld) at byte offset %d makes the data larger than %lld bytes",
                           path, i, (long long)out->dims[i], 4 + 4 * i, (long long)IDX_MAX_BYTES);
    }
    out->count = out->dims[0];
    out->per_item = 1;
    for (int i = 1; i < ndims; i++)
        if (__builtin_mul_overflow(out->per_item, out->dims[i], &out->per_item) || out->per_item > IDX_MAX_BYTES)
            return rt_errf(e, "%s: dimension %d (%lld) at byte offset %d is too large", path, i,
                           (long long)out->dims[i], 4 + 4 * i);
    return read_payload(gz, path, 4 + 4 * ndims, total, out, e);
}

static int open_and_read(const char *path, int min_dims, int max_dims, RtIdx *out, RtErr *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_errf(e, "%s: cannot open: %s", path, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return rt_errf(e, "%s: cannot open: out of memory", path);
    }
    gzbuffer(gz, 1 << 17);
    int rc = read_idx(gz, path, min_dims, max_dims, out, e);
    gzclose(gz);
    return rc;
}

int rt_idx_read(const char *path, int min_dims, int max_dims, RtIdx *out, RtErr *e) {
    if (min_dims < 1 || max_dims > RT_IDX_MAX_DIMS || min_dims > max_dims)
        return rt_errf(e, "%s: internal error: IDX dimensions %d to %d asked for", path, min_dims, max_dims);
    memset(out, 0, sizeof *out);
    RtBudget b;
    if (rt_budget_begin(&b, "IDX file", e) != RT_OK)
        return RT_ERR;
    int rc = open_and_read(path, min_dims, max_dims, out, e);
    rt_budget_end(&b);
    if (rc != RT_OK)
        rt_idx_free(out);
    return rc;
}

void rt_idx_free(RtIdx *x) {
    free(x->data);
    x->data = NULL;
}
