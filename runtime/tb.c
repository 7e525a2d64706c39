/* tb.c: TensorBoard event files (tb.h): the TFRecord framing with its masked CRC-32C, the Events packed by
   the C that protoc-c generates from proto/tensorboard.proto, and TensorFlow's default histogram buckets. */
#include "tb.h"

#include "tensorboard.pb-c.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- CRC-32C */
static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
        crc_table[i] = c;
    }
}

uint32_t rt_crc32c(const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = (c >> 8) ^ crc_table[(c ^ p[i]) & 0xff];
    return c ^ 0xffffffffu;
}

/* TFRecord's mask, so that a CRC stored inside CRC'd data does not cancel out */
uint32_t rt_crc32c_mask(uint32_t crc) {
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---------------------------------------------------------------- records */
static double wall_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int write_failed(RtTb *tb, RtErr *e) {
    return rt_errf(e, "TensorBoard: cannot write %s: %s", tb->path, strerror(errno ? errno : EIO));
}

/* One TFRecord: the length, its masked CRC, the packed event, the event's masked CRC. */
static int write_event(RtTb *tb, const Tensorflow__Event *ev, RtErr *e) {
    if (!tb->f)
        return rt_errf(e, "TensorBoard: the event file is not open");
    size_t len = tensorflow__event__get_packed_size(ev);
    size_t need = 12 + len + 4;
    if (need > tb->cap) {
        uint8_t *b = realloc(tb->buf, need);
        if (!b)
            return rt_errf(e, "TensorBoard: out of memory for an event of %zu bytes (%s)", len, tb->path);
        tb->buf = b;
        tb->cap = need;
    }
    uint8_t *r = tb->buf;
    put_le(r, len, 8);
    put_le(r + 8, rt_crc32c_mask(rt_crc32c(r, 8)), 4);
    tensorflow__event__pack(ev, r + 12);
    put_le(r + 12 + len, rt_crc32c_mask(rt_crc32c(r + 12, len)), 4);
    errno = 0;
    if (fwrite(r, 1, need, tb->f) != need)
        return write_failed(tb, e);
    return RT_OK;
}

static Tensorflow__Event new_event(int64_t step) {
    Tensorflow__Event ev = TENSORFLOW__EVENT__INIT;
    ev.wall_time = wall_time();
    ev.step = step;
    return ev;
}

/* An event whose summary is the one value v (its tag and value set by the caller). */
static int write_value(RtTb *tb, int64_t step, Tensorflow__Summary__Value *v, RtErr *e) {
    Tensorflow__Summary__Value *values[1] = {v};
    Tensorflow__Summary s = TENSORFLOW__SUMMARY__INIT;
    s.n_value = 1;
    s.value = values;
    Tensorflow__Event ev = new_event(step);
    ev.what_case = TENSORFLOW__EVENT__WHAT_SUMMARY;
    ev.summary = &s;
    return write_event(tb, &ev, e);
}

/* ---------------------------------------------------------------- opening and closing */
static int mkdir_parents(const char *dir, RtErr *e) {
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p)
        return rt_errf(e, "TensorBoard: folder name too long: %s", dir);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s)
            continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return rt_errf(e, "TensorBoard: cannot create folder %s: %s", p, strerror(errno));
        if (stat(p, &st) != 0)
            return rt_errf(e, "TensorBoard: cannot create folder %s: %s", p, strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return rt_errf(e, "TensorBoard: cannot create folder %s: a file of that name exists", p);
        *s = c;
        if (!c)
            return RT_OK;
    }
}

int rt_tb_open(RtTb *tb, const char *dir, RtErr *e) {
    static int counter; /* files this process has opened: the last part of their names */
    memset(tb, 0, sizeof *tb);
    if (!dir || !*dir)
        return rt_errf(e, "TensorBoard: no folder given");
    if (mkdir_parents(dir, e) != RT_OK)
        return RT_ERR;
    char host[256];
    if (gethostname(host, sizeof host) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++) /* a file name, whatever the host's name holds */
        if (*c == '/')
            *c = '_';
    for (int tries = 0;; tries++) {
        int n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
        if (snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%010lld.%s.%d.%d", dir,
                     (long long)time(NULL), host, (int)getpid(), n) >= (int)sizeof tb->path)
            return rt_errf(e, "TensorBoard: file name too long in folder %s", dir);
        tb->f = fopen(tb->path, "wbx"); /* never over an existing file */
        if (tb->f)
            break;
        if (errno != EEXIST || tries == 100)
            return rt_errf(e, "TensorBoard: cannot create %s: %s", tb->path, strerror(errno));
    }
    Tensorflow__Event ev = new_event(0);
    ev.what_case = TENSORFLOW__EVENT__WHAT_FILE_VERSION;
    ev.file_version = "brain.Event:2";
    if (write_event(tb, &ev, e) != RT_OK || rt_tb_flush(tb, e) != RT_OK) {
        rt_tb_close(tb, NULL);
        return RT_ERR;
    }
    return RT_OK;
}

int rt_tb_flush(RtTb *tb, RtErr *e) {
    if (!tb->f)
        return rt_errf(e, "TensorBoard: the event file is not open");
    errno = 0;
    if (fflush(tb->f) != 0 || ferror(tb->f))
        return write_failed(tb, e);
    return RT_OK;
}

int rt_tb_close(RtTb *tb, RtErr *e) {
    int rc = RT_OK;
    if (tb->f) {
        errno = 0;
        bool bad = fflush(tb->f) != 0 || ferror(tb->f);
        int err = errno;
        if (fclose(tb->f) != 0 && !bad) {
            bad = true;
            err = errno;
        }
        if (bad) {
            errno = err;
            rc = write_failed(tb, e);
        }
    }
    free(tb->buf);
    tb->f = NULL;
    tb->buf = NULL;
    tb->cap = 0;
    return rc;
}

/* ---------------------------------------------------------------- scalars */
int rt_tb_scalar(RtTb *tb, const char *tag, int64_t step, double value, RtErr *e) {
    Tensorflow__Summary__Value v = TENSORFLOW__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_SIMPLE_VALUE;
    v.simple_value = (float)value;
    return write_value(tb, step, &v, e);
}

/* ---------------------------------------------------------------- histograms */
/* TensorFlow's default bucket limits (tensorflow/core/lib/histogram): 1e-12 growing by 10% while below 1e20,
   mirrored below 0, with 0 between and ±DBL_MAX at the ends: 1551 limits. */
#define TB_MAX_LIMITS 1600
static double limits[TB_MAX_LIMITS];
static int nlimits;
static pthread_once_t limits_once = PTHREAD_ONCE_INIT;

static void limits_init(void) {
    double pos[TB_MAX_LIMITS / 2];
    int np = 0;
    for (double v = 1e-12; v < 1e20; v *= 1.1)
        pos[np++] = v;
    pos[np++] = DBL_MAX;
    for (int i = np - 1; i >= 0; i--)
        limits[nlimits++] = -pos[i];
    limits[nlimits++] = 0.0;
    for (int i = 0; i < np; i++)
        limits[nlimits++] = pos[i];
}

/* The bucket of v: the first limit above v (the last bucket for v at or above DBL_MAX). */
static int bucket_of(double v) {
    int lo = 0, hi = nlimits - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (limits[mid] > v)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int rt_tb_histogram(RtTb *tb, const char *tag, int64_t step, RtDType t, const void *data, int64_t n, RtErr *e) {
    pthread_once(&limits_once, limits_init);
    double *count = calloc((size_t)nlimits, sizeof *count);
    double *out_limit = malloc((size_t)nlimits * sizeof *out_limit);
    double *out_count = malloc((size_t)nlimits * sizeof *out_count);
    if (!count || !out_limit || !out_count) {
        free(count);
        free(out_limit);
        free(out_count);
        return rt_errf(e, "TensorBoard: out of memory for the histogram %s", tag);
    }
    Tensorflow__HistogramProto h = TENSORFLOW__HISTOGRAM_PROTO__INIT;
    h.min = INFINITY;
    h.max = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = rt_load(t, data, i);
        if (!isfinite(v))
            continue;
        count[bucket_of(v)] += 1;
        h.num += 1;
        h.sum += v;
        h.sum_squares += v * v;
        h.min = fmin(h.min, v);
        h.max = fmax(h.max, v);
    }
    if (h.num == 0)
        h.min = h.max = 0;
    /* a run of empty buckets becomes one empty bucket that ends where the run ends */
    size_t nb = 0;
    for (int i = 0; i < nlimits; i++) {
        if (count[i] == 0 && nb > 0 && out_count[nb - 1] == 0) {
            out_limit[nb - 1] = limits[i];
            continue;
        }
        out_limit[nb] = limits[i];
        out_count[nb++] = count[i];
    }
    h.n_bucket_limit = h.n_bucket = nb;
    h.bucket_limit = out_limit;
    h.bucket = out_count;
    Tensorflow__Summary__Value v = TENSORFLOW__SUMMARY__VALUE__INIT;
    v.tag = (char *)tag;
    v.value_case = TENSORFLOW__SUMMARY__VALUE__VALUE_HISTO;
    v.histo = &h;
    int rc = write_value(tb, step, &v, e);
    free(count);
    free(out_limit);
    free(out_count);
    return rc;
}

/* ---------------------------------------------------------------- an epoch */
/* The tag of a key of the JSON log: "train_loss" is "train/loss"; NULL for a key that is not a score. */
static const char *epoch_tag(const char *key, char *buf, size_t n) {
    if (strcmp(key, "lr") == 0)
        return key;
    static const char *const passes[] = {"train", "val", "test"};
    for (size_t i = 0; i < sizeof passes / sizeof *passes; i++) {
        size_t len = strlen(passes[i]);
        if (strncmp(key, passes[i], len) == 0 && key[len] == '_' && key[len + 1]) {
            snprintf(buf, n, "%s/%s", passes[i], key + len + 1);
            return buf;
        }
    }
    return NULL;
}

int rt_tb_epoch(RtTb *tb, int64_t step, const json_t *log, const RtModel *md, RtErr *e) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)log, key, v) {
        char buf[512];
        const char *tag = epoch_tag(key, buf, sizeof buf);
        if (!tag || !(json_is_number(v) || json_is_null(v)))
            continue;
        if (rt_tb_scalar(tb, tag, step, json_is_null(v) ? NAN : json_number_value(v), e) != RT_OK)
            return RT_ERR;
    }
    for (int i = 0; md && i < md->m->nparams; i++) {
        const RtParam *p = &md->m->params[i];
        int64_t n;
        if (!rt_numel(&p->t, 1, &n))
            return rt_errf(e, "TensorBoard: parameter %s has too many values", p->t.name);
        if (rt_tb_histogram(tb, p->t.name, step, p->t.dtype, md->params[i], n, e) != RT_OK)
            return RT_ERR;
    }
    return rt_tb_flush(tb, e);
}
