/* safetensors.c: checkpoints in the safetensors format (huggingface/safetensors): an 8-byte little-endian
   header length, a JSON header naming each tensor's dtype, shape and byte range, padded with spaces to a
   multiple of 8, then the raw little-endian data. Writes are atomic (temporary file, fsync, rename, fsync
   of the folder); loads check the whole file before a single parameter is touched. */
#include "rt.h"
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes host memory as little-endian data"
#endif

#define ST_MAX_HEADER (100ll * 1000 * 1000)

static const char *st_dtype(RtDType t) {
    static const char *names[] = {[RT_F32] = "F32", [RT_F64] = "F64", [RT_I32] = "I32", [RT_I64] = "I64",
                                  [RT_U8] = "U8"};
    return names[t];
}

static int64_t tensor_bytes(const RtTensor *t) {
    int64_t n = (int64_t)rt_dtype_size(t->dtype);
    for (int i = 0; i < t->rank; i++)
        n *= t->shape[i];
    return n;
}

static json_t *shape_json(const int64_t *shape, int rank) {
    json_t *a = json_array();
    for (int i = 0; i < rank; i++)
        json_array_append_new(a, json_integer(shape[i]));
    return a;
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The folder of path ("." when it has none) and the temporary name beside it. */
static void split_path(const char *path, char *dir, size_t ndir, char *tmp, size_t ntmp) {
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, ndir, ".");
        snprintf(tmp, ntmp, ".%s.tmp-%ld", path, (long)getpid());
    } else {
        int dl = (int)(slash - path);
        snprintf(dir, ndir, "%.*s", dl ? dl : 1, path);
        snprintf(tmp, ntmp, "%.*s/.%s.tmp-%ld", dl, path, slash + 1, (long)getpid());
    }
}

static char *build_header(const RtTensor *ts, int nts, json_t *meta, size_t *len) {
    json_t *h = json_object();
    int64_t off = 0;
    for (int i = 0; i < nts; i++) {
        int64_t n = tensor_bytes(&ts[i]);
        json_object_set_new(h, ts[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", st_dtype(ts[i].dtype), "shape",
                                      shape_json(ts[i].shape, ts[i].rank), "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + n)));
        off += n;
    }
    if (meta)
        json_object_set(h, "__metadata__", meta);
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text)
        return NULL;
    size_t n = strlen(text), padded = (n + 7) & ~(size_t)7;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = 0;
    *len = padded;
    return out;
}

int rt_st_save(const char *path, const RtTensor *ts, int nts, json_t *meta, RtErr *e) {
    char dir[4096], tmp[4200];
    split_path(path, dir, sizeof dir, tmp, sizeof tmp);
    size_t hlen;
    char *header = build_header(ts, nts, meta, &hlen);
    if (!header)
        return rt_errf(e, "%s: cannot build the header: out of memory", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(header);
        return rt_errf(e, "%s: cannot create: %s", tmp, strerror(errno));
    }
    uint8_t lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int bad = write_all(fd, lenbuf, 8) || write_all(fd, header, hlen);
    for (int i = 0; i < nts && !bad; i++)
        bad = write_all(fd, ts[i].data, (size_t)tensor_bytes(&ts[i]));
    free(header);
    const char *what = "write";
    if (!bad && fsync(fd) != 0) {
        bad = 1;
        what = "fsync";
    }
    int saved = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        what = "close";
        saved = errno;
    }
    if (bad) {
        unlink(tmp);
        return rt_errf(e, "%s: cannot %s: %s", tmp, what, strerror(saved));
    }
    if (rename(tmp, path) != 0) {
        saved = errno;
        unlink(tmp);
        return rt_errf(e, "%s: cannot rename to %s: %s", tmp, path, strerror(saved));
    }
    /* the rename itself is durable only once the folder is synced */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return rt_errf(e, "%s: cannot open its folder %s: %s", path, dir, strerror(errno));
    if (fsync(dfd) != 0 && errno != EINVAL) {
        saved = errno;
        close(dfd);
        return rt_errf(e, "%s: cannot fsync its folder %s: %s", path, dir, strerror(saved));
    }
    close(dfd);
    return RT_OK;
}

static int read_exact(int fd, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

typedef struct Range {
    int64_t begin, end;
    const char *name;
} Range;

static int range_cmp(const void *a, const void *b) {
    const Range *x = a, *y = b;
    return (x->begin > y->begin) - (x->begin < y->begin);
}

static RtTensor *find_tensor(RtTensor *ts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0)
            return &ts[i];
    return NULL;
}

/* Checks one header entry against its tensor; fills its byte range. */
static int check_entry(const char *path, const char *name, json_t *v, const RtTensor *t, int64_t data_size,
                       Range *r, RtErr *e) {
    const char *dt = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !dt || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2)
        return rt_errf(e, "%s: tensor '%s': the header entry needs dtype, shape and data_offsets [begin, end]",
                       path, name);
    if (strcmp(dt, st_dtype(t->dtype)) != 0)
        return rt_errf(e, "%s: tensor '%s' has dtype %s, the model's parameter is %s", path, name, dt,
                       st_dtype(t->dtype));
    int rank = (int)json_array_size(shape);
    int64_t dims[RT_MAX_RANK] = {0};
    bool same = rank == t->rank;
    for (int i = 0; i < rank && i < RT_MAX_RANK; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return rt_errf(e, "%s: tensor '%s': shape entry %d is not a non-negative integer", path, name, i);
        dims[i] = json_integer_value(d);
        same = same && dims[i] == t->shape[i];
    }
    if (!same) {
        char got[256], want[256];
        rt_shape_text(dims, rank < RT_MAX_RANK ? rank : RT_MAX_RANK, got, sizeof got);
        rt_shape_text(t->shape, t->rank, want, sizeof want);
        return rt_errf(e, "%s: tensor '%s' has shape %s, the model's parameter is %s", path, name, got, want);
    }
    json_t *b = json_array_get(offs, 0), *en = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(en))
        return rt_errf(e, "%s: tensor '%s': data_offsets are not integers", path, name);
    r->begin = json_integer_value(b);
    r->end = json_integer_value(en);
    r->name = name;
    if (r->begin < 0 || r->end < r->begin || r->end > data_size)
        return rt_errf(e, "%s: tensor '%s': data_offsets [%lld, %lld] out of bounds of the %lld data bytes", path,
                       name, (long long)r->begin, (long long)r->end, (long long)data_size);
    if (r->end - r->begin != tensor_bytes(t))
        return rt_errf(e, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, its shape needs %lld", path,
                       name, (long long)r->begin, (long long)r->end, (long long)(r->end - r->begin),
                       (long long)tensor_bytes(t));
    return RT_OK;
}

/* Validates the parsed header; on success fills src[i] (the offset of each matched tensor, -1 if absent). */
/* The bytes of a tensor of a dtype the model may not have (an unexpected tensor of a PyTorch file), for the
   checks of its byte range; -1 for a dtype this reader does not know, -2 for a bad shape, -3 for a size past
   64 bits. */
static int64_t foreign_bytes(const char *dt, json_t *shape) {
    static const struct {
        const char *name;
        int size;
    } sizes[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
                 {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},   {"BOOL", 1}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        if (strcmp(dt, sizes[i].name) != 0)
            continue;
        int64_t n = sizes[i].size;
        for (size_t k = 0; k < json_array_size(shape); k++) {
            json_t *d = json_array_get(shape, k);
            if (!json_is_integer(d) || json_integer_value(d) < 0)
                return -2;
            if (__builtin_mul_overflow(n, json_integer_value(d), &n))
                return -3;
        }
        return n;
    }
    return -1;
}

/* An entry that names no tensor of the model (--init-from): its range is checked as any other's. */
static int check_foreign(const char *path, const char *name, json_t *v, int64_t data_size, Range *r, RtErr *e) {
    const char *dt = json_string_value(json_object_get(v, "dtype"));
    json_t *shape = json_object_get(v, "shape"), *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !dt || !json_is_array(shape) || !json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return rt_errf(e, "%s: tensor '%s': the header entry needs dtype, shape and data_offsets [begin, end]",
                       path, name);
    r->begin = json_integer_value(json_array_get(offs, 0));
    r->end = json_integer_value(json_array_get(offs, 1));
    r->name = name;
    int64_t want = foreign_bytes(dt, shape);
    if (want == -2)
        return rt_errf(e, "%s: tensor '%s': the shape is not a list of non-negative integers", path, name);
    if (want == -3)
        return rt_errf(e, "%s: tensor '%s': the shape's size in bytes overflows 64 bits", path, name);
    if (r->begin < 0 || r->end < r->begin || r->end > data_size)
        return rt_errf(e, "%s: tensor '%s': data_offsets [%lld, %lld] out of bounds of the %lld data bytes", path,
                       name, (long long)r->begin, (long long)r->end, (long long)data_size);
    if (want >= 0 && r->end - r->begin != want)
        return rt_errf(e, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes, its dtype and shape need %lld",
                       path, name, (long long)r->begin, (long long)r->end, (long long)(r->end - r->begin),
                       (long long)want);
    return RT_OK;
}

/* Appends name to the comma-separated list *list (malloc'd). */
static int append_name(char **list, const char *name) {
    size_t old = *list ? strlen(*list) : 0, add = strlen(name) + 3;
    char *p = realloc(*list, old + add);
    if (!p)
        return RT_ERR;
    snprintf(p + old, add, "%s%s", old ? ", " : "", name);
    *list = p;
    return RT_OK;
}

/* The model's name for the file's tensor key under init's prefix rules (the first rule whose prefix the key
   starts with), in buf; the key itself without a rule. */
static const char *mapped_name(const RtStInit *init, const char *key, char *buf, size_t n) {
    for (int i = 0; init && i < init->nmap; i++) {
        size_t k = strlen(init->from[i]);
        if (strncmp(key, init->from[i], k) == 0) {
            snprintf(buf, n, "%s%s", init->to[i], key + k);
            return buf;
        }
    }
    return key;
}

static int check_header(const char *path, json_t *h, RtTensor *req, int nreq, RtTensor *opt, int nopt,
                        int64_t data_size, int64_t *src, RtStInit *init, RtErr *e) {
    if (!json_is_object(h))
        return rt_errf(e, "%s: the header is not a JSON object", path);
    int ntot = nreq + nopt;
    for (int i = 0; i < ntot; i++)
        src[i] = -1;
    Range *ranges = rt_budget_calloc(json_object_size(h) + 1, sizeof *ranges, path, "the header's tensors", e);
    if (!ranges)
        return RT_ERR;
    int nr = 0, rc = RT_OK;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(v)) {
                rc = rt_errf(e, "%s: __metadata__ is not an object", path);
                break;
            }
            continue;
        }
        char mapped[1024];
        const char *name = mapped_name(init, key, mapped, sizeof mapped);
        RtTensor *t = find_tensor(req, nreq, name);
        int slot = t ? (int)(t - req) : -1;
        if (!t && (t = find_tensor(opt, nopt, name)))
            slot = nreq + (int)(t - opt);
        if (!t && init) { /* load_state_dict(strict=False): reported, not loaded */
            if ((rc = check_foreign(path, key, v, data_size, &ranges[nr], e)) != RT_OK)
                break;
            nr++;
            if (init->skip && strncmp(key, init->skip, strlen(init->skip)) == 0)
                continue;
            if (append_name(&init->unexpected, key) != RT_OK) {
                rc = rt_errf(e, "out of memory");
                break;
            }
            continue;
        }
        if (!t) {
            rc = rt_errf(e, "%s: unexpected tensor '%s' (the model has no parameter of that name)", path, key);
            break;
        }
        if (src[slot] >= 0) {
            rc = rt_errf(e, "%s: two tensors of the file map to the model's '%s'", path, name);
            break;
        }
        if ((rc = check_entry(path, key, v, t, data_size, &ranges[nr], e)) != RT_OK)
            break;
        src[slot] = ranges[nr++].begin;
    }
    if (rc == RT_OK) {
        qsort(ranges, (size_t)nr, sizeof *ranges, range_cmp);
        for (int i = 0; i + 1 < nr && rc == RT_OK; i++)
            if (ranges[i].end > ranges[i + 1].begin)
                rc = rt_errf(e, "%s: tensors '%s' and '%s' overlap in the data section", path, ranges[i].name,
                             ranges[i + 1].name);
    }
    for (int i = 0; i < nreq && rc == RT_OK; i++)
        if (src[i] < 0)
            rc = rt_errf(e, "%s: missing tensor '%s'", path, req[i].name);
    for (int i = 0; init && i < nopt && rc == RT_OK; i++) {
        if (src[nreq + i] >= 0)
            init->loaded++;
        else if (append_name(&init->missing, opt[i].name) != RT_OK)
            rc = rt_errf(e, "out of memory");
    }
    free(ranges);
    return rc;
}

static int load_fd(int fd, const char *path, RtTensor *req, int nreq, RtTensor *opt, int nopt, json_t **meta_out,
                   RtStInit *init, RtErr *e) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return rt_errf(e, "%s: cannot stat: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return rt_errf(e, "%s: not a regular file", path);
    int64_t size = st.st_size;
    if (size < 8)
        return rt_errf(e, "%s: %lld bytes is too small for a safetensors file (it starts with an 8-byte header length)",
                       path, (long long)size);
    uint8_t lb[8];
    if (read_exact(fd, lb, 8) != 0)
        return rt_errf(e, "%s: cannot read the header length: %s", path, strerror(errno));
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)lb[i] << (8 * i);
    if (hlen > (uint64_t)(size - 8))
        return rt_errf(e, "%s: header length %llu at byte offset 0 exceeds the %lld bytes after it", path,
                       (unsigned long long)hlen, (long long)(size - 8));
    if (hlen > (uint64_t)ST_MAX_HEADER)
        return rt_errf(e, "%s: header length %llu at byte offset 0 exceeds the limit of %lld bytes", path,
                       (unsigned long long)hlen, ST_MAX_HEADER);
    int64_t data_size = size - 8 - (int64_t)hlen;
    char *header = rt_budget_malloc(hlen + 1, path, "the JSON header", e);
    uint8_t *data = header ? rt_budget_malloc((size_t)data_size + 1, path, "the tensors' data", e) : NULL;
    int64_t *src = data ? rt_budget_calloc((size_t)(nreq + nopt) + 1, sizeof *src, path, "the header", e) : NULL;
    json_t *h = NULL;
    int rc = RT_OK;
    if (!src) {
        rc = RT_ERR;
        goto done;
    }
    if (read_exact(fd, header, hlen) != 0 || read_exact(fd, data, (size_t)data_size) != 0) {
        rc = rt_errf(e, "%s: read error: %s", path, errno ? strerror(errno) : "file shrank while reading");
        goto done;
    }
    json_error_t je;
    h = json_loadb(header, hlen, JSON_REJECT_DUPLICATES, &je);
    if (!h && rt_budget_refused(path, "the JSON header", e) != RT_OK) {
        rc = RT_ERR;
        goto done;
    }
    if (!h) {
        rc = rt_errf(e, "%s: invalid JSON header at byte offset %lld: %s", path, (long long)(8 + je.position),
                     je.text);
        goto done;
    }
    if ((rc = check_header(path, h, req, nreq, opt, nopt, data_size, src, init, e)) != RT_OK)
        goto done;
    /* the metadata first: once a tensor is written, nothing may fail */
    if (meta_out) {
        json_t *m = json_object_get(h, "__metadata__");
        if (!(*meta_out = m ? json_incref(m) : json_object())) {
            rc = rt_errf(e, "%s: out of memory", path);
            goto done;
        }
    }
    for (int i = 0; i < nreq + nopt; i++) {
        RtTensor *t = i < nreq ? &req[i] : &opt[i - nreq];
        if (src[i] >= 0)
            memcpy(t->data, data + src[i], (size_t)tensor_bytes(t));
    }
done:
    json_decref(h);
    free(header);
    free(data);
    free(src);
    return rc;
}

/* One checkpoint is one load of the readers' budget (budget.h). */
static int load_path(const char *path, RtTensor *req, int nreq, RtTensor *opt, int nopt, json_t **meta_out,
                     RtStInit *init, RtErr *e) {
    RtBudget b;
    if (rt_budget_begin(&b, "checkpoint", e) != RT_OK)
        return RT_ERR;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rt_budget_end(&b);
        return rt_errf(e, "%s: cannot open: %s", path, strerror(errno));
    }
    errno = 0;
    int rc = load_fd(fd, path, req, nreq, opt, nopt, meta_out, init, e);
    close(fd);
    rt_budget_end(&b);
    return rc;
}

int rt_st_load(const char *path, RtTensor *req, int nreq, RtTensor *opt, int nopt, json_t **meta_out, RtErr *e) {
    return load_path(path, req, nreq, opt, nopt, meta_out, NULL, e);
}

int rt_st_init_from(const char *path, RtTensor *ts, int n, RtStInit *init, RtErr *e) {
    init->loaded = 0;
    init->missing = init->unexpected = NULL;
    int rc = load_path(path, NULL, 0, ts, n, init->meta, init, e);
    if (rc != RT_OK)
        rt_st_init_free(init);
    return rc;
}

int rt_st_read_meta(const char *path, json_t **meta, RtErr *e) {
    RtStInit all = {0}; /* every tensor unexpected: checked, not loaded */
    int rc = load_path(path, NULL, 0, NULL, 0, meta, &all, e);
    rt_st_init_free(&all);
    return rc;
}

void rt_st_init_free(RtStInit *init) {
    free(init->missing);
    free(init->unexpected);
    init->missing = init->unexpected = NULL;
}
