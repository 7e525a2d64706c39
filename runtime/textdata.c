/* textdata.c: the data sources read from whole files: text(file, context, stride), where bytes are tokens
   and each sample's labels are the bytes that follow its inputs (a character language model), and
   csv(file, header, label_column, regression), numeric records of features and one label. Both read plain
   or gzip files; every bad file is one message with the file and the byte offset or line. */
#include "rt.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* 16 GiB, as for IDX: far beyond what this runtime keeps in memory */
#define DATA_MAX_BYTES (1ll << 34)
#define CHUNK (1 << 20)

int rt_read_file(const char *path, int64_t max, uint8_t **data, int64_t *size, RtErr *e) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rt_errf(e, "%s: cannot open: %s", path, strerror(errno));
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return rt_errf(e, "%s: cannot open: out of memory", path);
    }
    gzbuffer(gz, 1 << 17);
    int64_t cap = CHUNK < max ? CHUNK : max, got = 0;
    uint8_t *buf = malloc((size_t)cap + 1);
    int rc = buf ? RT_OK : rt_errf(e, "%s: out of memory", path);
    while (rc == RT_OK) {
        if (got == cap) {
            if (cap >= max) {
                rc = rt_errf(e, "%s: larger than %lld bytes, more than this runtime reads into memory", path,
                             (long long)max);
                break;
            }
            cap = cap * 2 < max ? cap * 2 : max;
            uint8_t *nb = realloc(buf, (size_t)cap + 1);
            if (!nb) {
                rc = rt_errf(e, "%s: out of memory after %lld bytes", path, (long long)got);
                break;
            }
            buf = nb;
        }
        int64_t want = cap - got < CHUNK ? cap - got : CHUNK;
        int r = gzread(gz, buf + got, (unsigned)want);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gzerror(gz, &errnum);
            rc = rt_errf(e, "%s: read error at byte offset %lld: %s", path, (long long)got,
                         errnum == Z_ERRNO ? strerror(errno) : msg);
        } else if (r == 0) {
            break;
        }
        got += r > 0 ? r : 0;
    }
    gzclose(gz);
    if (rc != RT_OK) {
        free(buf);
        return rc;
    }
    buf[got] = 0;
    *data = buf;
    *size = got;
    return RT_OK;
}

/* ---------------------------------------------------------------- text */

int rt_text_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *path = d->images_path;
    int64_t t = spec->context, stride = spec->stride;
    if (t < 1 || stride < 1)
        return rt_errf(e, "%s: text(...) needs context >= 1 and stride >= 1 (got %lld and %lld)", path,
                       (long long)t, (long long)stride);
    if (rt_read_file(path, DATA_MAX_BYTES, &d->images, &d->size, e) != RT_OK)
        return RT_ERR;
    if (d->size == 0)
        return rt_errf(e, "%s: empty file (text needs at least context + 1 = %lld bytes)", path, (long long)t + 1);
    /* a sample is context bytes of input and the same window moved by one byte as its labels */
    if (d->size < t + 1)
        return rt_errf(e, "%s: truncated at byte offset %lld: one sample of context %lld needs %lld bytes (its "
                       "inputs and the byte after them)", path, (long long)d->size, (long long)t, (long long)t + 1);
    d->kind = RT_DATA_TEXT;
    d->count = (d->size - t - 1) / stride + 1;
    d->per_sample = d->per_label = t;
    d->stride = stride;
    return RT_OK;
}

/* ---------------------------------------------------------------- csv */

typedef struct Csv {
    const char *path;
    const char *p, *end; /* the text not read yet */
    int64_t line;        /* of the record being read, 1-based */
    double *row;         /* the cells of the current record */
    int ncols, cap;
} Csv;

static bool blank(const char *p, const char *q) {
    for (; p < q; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

/* One cell [p, q) as a finite number into *out; the message names the line and the column. */
static int cell_number(const Csv *c, const char *p, const char *q, int col, double *out, RtErr *e) {
    while (p < q && (*p == ' ' || *p == '\t'))
        p++;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        q--;
    if (q - p >= 2 && *p == '"' && q[-1] == '"')
        p++, q--;
    char buf[128];
    size_t n = (size_t)(q - p);
    if (n == 0)
        return rt_errf(e, "%s:%lld: column %d is empty (every cell must be a number)", c->path, (long long)c->line,
                       col + 1);
    if (n >= sizeof buf)
        return rt_errf(e, "%s:%lld: column %d: '%.20s...' is not a number", c->path, (long long)c->line, col + 1, p);
    memcpy(buf, p, n);
    buf[n] = 0;
    char *stop;
    errno = 0;
    double v = strtod(buf, &stop);
    if (*stop || memchr(buf, 0, n) || !isfinite(v)) {
        for (size_t i = 0; i < n; i++) /* the message stays one printable line */
            if ((unsigned char)buf[i] < 0x20)
                buf[i] = '?';
        return rt_errf(e, "%s:%lld: column %d: '%s' is not a %snumber", c->path, (long long)c->line, col + 1, buf,
                       *stop ? "" : "finite ");
    }
    *out = v;
    return RT_OK;
}

/* Reads the next record into c->row; returns 1 for a record, 0 at the end, RT_ERR on a bad line. Blank lines
   are skipped, as pandas does. */
static int next_record(Csv *c, RtErr *e) {
    while (c->p < c->end) {
        const char *eol = memchr(c->p, '\n', (size_t)(c->end - c->p));
        if (!eol)
            eol = c->end;
        const char *q = eol > c->p && eol[-1] == '\r' ? eol - 1 : eol;
        const char *p = c->p;
        c->p = eol + (eol < c->end);
        c->line++;
        if (blank(p, q))
            continue;
        int n = 0;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(q - p));
            const char *ce = comma ? comma : q;
            if (n == c->cap) {
                int cap = c->cap ? 2 * c->cap : 16;
                double *nr = cap < (1 << 24) ? realloc(c->row, (size_t)cap * sizeof *nr) : NULL;
                if (!nr)
                    return rt_errf(e, "%s:%lld: too many columns", c->path, (long long)c->line);
                c->row = nr;
                c->cap = cap;
            }
            if (cell_number(c, p, ce, n, &c->row[n], e) != RT_OK)
                return RT_ERR;
            n++;
            if (!comma)
                break;
            p = comma + 1;
        }
        if (c->ncols && n != c->ncols)
            return rt_errf(e, "%s:%lld: %d cells, but the records before have %d", c->path, (long long)c->line, n,
                           c->ncols);
        c->ncols = n;
        return 1;
    }
    return 0;
}

/* Grows *p (of *cap elements of size) to hold need elements. */
static bool grow(void **p, int64_t *cap, int64_t need, size_t size) {
    if (need <= *cap)
        return true;
    int64_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    size_t bytes;
    if (__builtin_mul_overflow((size_t)n, size, &bytes))
        return false;
    void *q = realloc(*p, bytes);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

int rt_csv_load(RtDataset *d, const RtDataSpec *spec, RtErr *e) {
    const char *path = d->images_path;
    uint8_t *text;
    int64_t size;
    if (rt_read_file(path, DATA_MAX_BYTES, &text, &size, e) != RT_OK)
        return RT_ERR;
    Csv c = {.path = path, .p = (const char *)text, .end = (const char *)text + size};
    if (spec->header) { /* the first line names the columns */
        const char *eol = memchr(c.p, '\n', (size_t)(c.end - c.p));
        c.p = eol ? eol + 1 : c.end;
        c.line = 1;
    }
    int64_t fcap = 0, tcap = 0, lcap = 0, count = 0;
    int label = -1, rc = RT_OK, r;
    d->kind = RT_DATA_CSV;
    d->regression = spec->regression;
    while ((r = next_record(&c, e)) == 1) {
        if (label < 0) {
            int64_t lc = spec->label_column < 0 ? c.ncols + spec->label_column : spec->label_column;
            if (c.ncols < 2) {
                rc = rt_errf(e, "%s:%lld: a record needs at least two columns (features and a label), this one has "
                             "%d", path, (long long)c.line, c.ncols);
                break;
            }
            if (lc < 0 || lc >= c.ncols) {
                rc = rt_errf(e, "%s:%lld: label_column = %lld, but the records have %d columns", path,
                             (long long)c.line, (long long)spec->label_column, c.ncols);
                break;
            }
            label = (int)lc;
            d->per_sample = c.ncols - 1;
            d->per_label = 1;
        }
        double y = c.row[label];
        if (!spec->regression && (y < 0 || y != floor(y) || y > INT32_MAX)) {
            rc = rt_errf(e, "%s:%lld: column %d: label %g is not a class index (an integer >= 0); csv(..., "
                         "regression = true) reads real-valued labels", path, (long long)c.line, label + 1, y);
            break;
        }
        if (!grow((void **)&d->features, &fcap, (count + 1) * d->per_sample, sizeof *d->features) ||
            !grow((void **)&d->targets, &tcap, count + 1, sizeof *d->targets) ||
            !grow((void **)&d->lines, &lcap, count + 1, sizeof *d->lines)) {
            rc = rt_errf(e, "%s: out of memory at line %lld", path, (long long)c.line);
            break;
        }
        double *f = d->features + count * d->per_sample;
        for (int k = 0; k < c.ncols; k++)
            if (k != label)
                *f++ = c.row[k];
        d->targets[count] = y;
        d->lines[count] = c.line;
        count++;
    }
    if (r < 0)
        rc = RT_ERR;
    if (rc == RT_OK && count == 0)
        rc = rt_errf(e, "%s: no records%s", path, spec->header ? " after the header line" : "");
    free(c.row);
    free(text);
    d->count = count;
    return rc;
}
