/* recipe.c: reading the recipe's calls (idx(...), SGD(...), StepLR(...)) from the manifest's JSON: an
   argument by keyword or position, and the checks every reader of a call makes. */
#include "rt.h"

#include <ctype.h>
#include <string.h>

/* A call's argument: kwargs[key], or else its positional argument pos (pos < 0: keyword only). */
json_t *rt_call_arg(const json_t *call, const char *key, int pos) {
    json_t *v = json_object_get(json_object_get(call, "kwargs"), key);
    return v ? v : pos >= 0 ? json_array_get(json_object_get(call, "args"), (size_t)pos) : NULL;
}

int rt_call_check(const json_t *call, const char *key, const char *name, const char *const *known, int nknown,
                      int npositional, RtErr *e) {
    if (json_array_size(json_object_get(call, "args")) > (size_t)npositional)
        return rt_errf(e, "recipe key %s: %s takes at most %d positional arguments", key, name, npositional);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(call, "kwargs"), k, v) {
        int i = 0;
        while (i < nknown && strcmp(known[i], k) != 0)
            i++;
        if (i == nknown)
            return rt_errf(e, "recipe key %s: %s has no argument '%s'", key, name, k);
    }
    return RT_OK;
}

int rt_call_int(const json_t *call, const char *key, const char *arg, int pos, int64_t dflt, int64_t min, int64_t *out,
                   RtErr *e) {
    json_t *v = rt_call_arg(call, arg, pos);
    *out = dflt;
    if (!v)
        return RT_OK;
    if (!json_is_integer(v) || json_integer_value(v) < min)
        return rt_errf(e, "recipe key %s: %s must be an integer of at least %lld", key, arg, (long long)min);
    *out = json_integer_value(v);
    return RT_OK;
}

int rt_call_bool(const json_t *call, const char *key, const char *arg, int pos, bool dflt, bool *out, RtErr *e) {
    json_t *v = rt_call_arg(call, arg, pos);
    *out = dflt;
    if (!v)
        return RT_OK;
    if (!json_is_boolean(v))
        return rt_errf(e, "recipe key %s: %s must be true or false", key, arg);
    *out = json_is_true(v);
    return RT_OK;
}


int rt_call_num(const json_t *call, const char *key, const char *arg, int pos, double dflt, double min, double max,
                double *out, RtErr *e) {
    json_t *v = rt_call_arg(call, arg, pos);
    *out = dflt;
    if (!v)
        return RT_OK;
    if (!json_is_number(v) || !(json_number_value(v) >= min && json_number_value(v) <= max))
        return rt_errf(e, "recipe key %s: %s must be a number from %g to %g", key, arg, min, max);
    *out = json_number_value(v);
    return RT_OK;
}

int rt_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return 1000;
    int row[65];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *rt_closest(const char *name, const char *const *cands, int n) {
    const char *best = NULL;
    int best_d = 1000, limit = (int)strlen(name) / 3 + 1;
    for (int i = 0; i < n; i++) {
        int d = rt_edit_distance(name, cands[i]);
        if (d < best_d && d <= limit) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}
