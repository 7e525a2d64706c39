/* test_transforms.c: the recipe's transforms: scale and normalize values (per channel, f32 and f64), random_crop
   (zero-padded shifts, keyed by seed, epoch and sample), random_hflip (its probability), eval applying the
   deterministic ones only, and the messages for a wrong transforms key. */
#include "support.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static RtTensorSpec image(RtDType t, int64_t c, int64_t h, int64_t w) {
    RtTensorSpec x = {.name = "x", .dtype = t, .rank = 4, .shape = {-1, c, h, w}, .role = RT_ROLE_INPUT};
    return x;
}

/* Parses {"transforms": text} against x. */
static int parse(const char *text, const RtTensorSpec *x, RtTransforms *t, RtErr *e) {
    char buf[2048];
    snprintf(buf, sizeof buf, "{\"transforms\": %s}", text);
    json_t *r = ts_json(buf);
    int rc = rt_transforms_parse(r, x, t, e);
    json_decref(r);
    return rc;
}

static void parse_ok(const char *text, const RtTensorSpec *x, RtTransforms *t) {
    RtErr e = {{0}};
    int rc = parse(text, x, t, &e);
    if (rc != RT_OK)
        fail_msg("%s: %s", text, e.msg);
}

static void parse_fails(const char *text, const RtTensorSpec *x, const char *part) {
    RtTransforms t;
    RtErr e = {{0}};
    assert_int_equal(parse(text, x, &t, &e), RT_ERR);
    assert_contains(e.msg, part);
    assert_int_equal(t.n, 0);
}

#define CALL(name, args, kwargs) "{\"call\": \"" name "\", \"args\": " args ", \"kwargs\": " kwargs "}"

/* sample k, value i: 1 + 1000 * k + i, nonzero everywhere so that zeros are padding */
static void fill(RtDType t, void *x, int64_t n, int64_t per) {
    for (int64_t k = 0; k < n; k++)
        for (int64_t i = 0; i < per; i++)
            rt_store(t, x, k * per + i, (double)(1 + 1000 * k + i));
}

static void test_absent_or_empty_transforms_are_none(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 4, 4);
    RtTransforms t;
    RtErr e;
    json_t *r = json_object();
    assert_int_equal(rt_transforms_parse(r, &x, &t, &e), RT_OK);
    assert_int_equal(t.n, 0);
    json_decref(r);
    parse_ok("[]", &x, &t);
    assert_int_equal(t.n, 0);
    parse_ok("null", &x, &t);
    assert_int_equal(t.n, 0);
}

static void test_normalize_per_channel_f32(void **state) {
    RtTensorSpec x = image(RT_F32, 3, 2, 2);
    RtTransforms t;
    parse_ok("[" CALL("normalize", "[]", "{\"mean\": [0.1, 0.2, 0.3], \"std\": [0.5, 0.25, 2]}") "]", &x, &t);
    assert_int_equal(t.n, 1);
    float v[2 * 12];
    fill(RT_F32, v, 2, 12);
    int64_t ids[2] = {0, 1};
    rt_transforms_apply(&t, true, RT_F32, v, &x, 2, ids, 1, 0);
    const float mean[3] = {0.1f, 0.2f, 0.3f}, sd[3] = {0.5f, 0.25f, 2.0f};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 12; i++) {
            int c = i / 4; /* dimension 1: 4 values per channel */
            float want = ((float)(1 + 1000 * k + i) - mean[c]) / sd[c];
            assert_true(v[k * 12 + i] == want);
        }
}

static void test_normalize_per_channel_f64_and_one_value_broadcast(void **state) {
    RtTensorSpec x = image(RT_F64, 2, 1, 3);
    RtTransforms t;
    parse_ok("[" CALL("normalize", "[[1, 2], 4]", "{}") "]", &x, &t); /* positional; one std for both */
    double v[6];
    fill(RT_F64, v, 1, 6);
    int64_t id = 5;
    rt_transforms_apply(&t, false, RT_F64, v, &x, 1, &id, 1, 0);
    for (int i = 0; i < 6; i++)
        assert_true(v[i] == ((double)(1 + i) - (i < 3 ? 1.0 : 2.0)) / 4.0);
}

static void test_normalize_one_value_for_any_shape(void **state) {
    RtTensorSpec x = {.name = "x", .dtype = RT_F32, .rank = 2, .shape = {-1, 784}};
    RtTransforms t;
    parse_ok(CALL("normalize", "[]", "{\"mean\": 0.2860, \"std\": 0.3530}"), &x, &t); /* one call, no list */
    float *v = malloc(784 * sizeof *v);
    fill(RT_F32, v, 1, 784);
    int64_t id = 0;
    rt_transforms_apply(&t, true, RT_F32, v, &x, 1, &id, 1, 0);
    for (int i = 0; i < 784; i++)
        assert_true(v[i] == ((float)(1 + i) - 0.2860f) / 0.3530f);
    free(v);
}

static void test_normalize_channel_count_must_match(void **state) {
    RtTensorSpec x = image(RT_F32, 3, 4, 4);
    parse_fails("[" CALL("normalize", "[]", "{\"mean\": [0.1, 0.2], \"std\": [1]}") "]", &x,
                "recipe key transforms: normalize: mean has 2 values, but the input 'x' f32[N, 3, 4, 4] has 3 "
                "channels");
    parse_fails("[" CALL("normalize", "[]", "{\"mean\": [0.1], \"std\": [1, 0, 1]}") "]", &x,
                "normalize: std holds 0");
    parse_fails("[" CALL("normalize", "[]", "{\"mean\": [0.1]}") "]", &x, "normalize: std is missing");
    parse_fails("[" CALL("normalize", "[]", "{\"mean\": \"a\", \"std\": 1}") "]", &x,
                "normalize: mean must be a number");
}

static void test_scale_divides_by_reciprocal_as_to_tensor(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 1, 256);
    RtTransforms t;
    parse_ok("[" CALL("scale", "[0.00392156862745098]", "{}") "]", &x, &t); /* 1 / 255 as the recipe folds it */
    float v[256];
    for (int i = 0; i < 256; i++)
        v[i] = (float)i;
    int64_t id = 0;
    rt_transforms_apply(&t, false, RT_F32, v, &x, 1, &id, 0, 0);
    for (int i = 0; i < 256; i++)
        assert_true(v[i] == (float)i / 255.0f);
    parse_ok("[" CALL("scale", "[]", "{\"factor\": 2.5}") "]", &x, &t);
    v[3] = 2;
    rt_transforms_apply(&t, false, RT_F32, v, &x, 1, &id, 0, 0);
    assert_true(v[3] == 5.0f);
    parse_fails("[" CALL("scale", "[]", "{}") "]", &x, "scale: factor must be a number");
}

/* The offsets (dy, dx) that explain a cropped sample: out[y][x] = in[y + dy][x + dx] inside, 0 outside, the
   same for every channel. Fails the test when no offset within padding does. */
static void crop_offset(const float *in, const float *out, int64_t c, int64_t h, int64_t w, int64_t pad, int *ody,
                        int *odx) {
    for (int dy = (int)-pad; dy <= pad; dy++)
        for (int dx = (int)-pad; dx <= pad; dx++) {
            bool ok = true;
            for (int64_t ch = 0; ch < c && ok; ch++)
                for (int64_t y = 0; y < h && ok; y++)
                    for (int64_t x = 0; x < w && ok; x++) {
                        int64_t sy = y + dy, sx = x + dx;
                        float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? in[(ch * h + sy) * w + sx] : 0.0f;
                        ok = out[(ch * h + y) * w + x] == want;
                    }
            if (ok) {
                *ody = dy, *odx = dx;
                return;
            }
        }
    fail_msg("the cropped sample is no shift of the input with zero borders");
}

enum { CC = 2, CH = 6, CW = 5, CPER = CC * CH * CW, CN = 40, PAD = 2 };

static void crop_batch(const RtTransforms *t, float *v, const int64_t *ids, int64_t n, uint64_t seed, int64_t epoch) {
    RtTensorSpec x = image(RT_F32, CC, CH, CW);
    for (int64_t k = 0; k < n; k++)
        for (int i = 0; i < CPER; i++)
            v[k * CPER + i] = (float)(1 + 1000 * ids[k] + i);
    rt_transforms_apply(t, true, RT_F32, v, &x, n, ids, seed, epoch);
}

static void test_random_crop_shifts_with_zero_borders(void **state) {
    RtTensorSpec x = image(RT_F32, CC, CH, CW);
    RtTransforms t;
    parse_ok("[" CALL("random_crop", "[[6, 5]]", "{\"padding\": 2}") "]", &x, &t);
    assert_int_equal(t.t[0].padding, PAD);
    static float v[CN * CPER];
    int64_t ids[CN];
    for (int k = 0; k < CN; k++)
        ids[k] = k;
    crop_batch(&t, v, ids, CN, 7, 0);
    int seen[2 * PAD + 1][2 * PAD + 1] = {{0}}, shifted = 0;
    for (int k = 0; k < CN; k++) {
        float in[CPER];
        for (int i = 0; i < CPER; i++)
            in[i] = (float)(1 + 1000 * k + i);
        int dy = 0, dx = 0;
        crop_offset(in, v + k * CPER, CC, CH, CW, PAD, &dy, &dx);
        seen[dy + PAD][dx + PAD]++;
        shifted += dy != 0 || dx != 0;
    }
    /* 25 offsets, each 1/25: with 40 samples nearly all shifted, both ways in both directions */
    assert_true(shifted >= 30);
    int up = 0, down = 0, left = 0, right = 0;
    for (int a = 0; a <= 2 * PAD; a++)
        for (int b = 0; b <= 2 * PAD; b++) {
            up += a < PAD ? seen[a][b] : 0, down += a > PAD ? seen[a][b] : 0;
            left += b < PAD ? seen[a][b] : 0, right += b > PAD ? seen[a][b] : 0;
        }
    assert_true(up > 0 && down > 0 && left > 0 && right > 0);
}

static void test_random_crop_keyed_by_seed_epoch_and_sample(void **state) {
    RtTensorSpec x = image(RT_F32, CC, CH, CW);
    RtTransforms t;
    parse_ok("[" CALL("random_crop", "[]", "{\"size\": [6, 5], \"padding\": 2}") "]", &x, &t);
    static float a[CN * CPER], b[CN * CPER];
    int64_t ids[CN], rev[CN];
    for (int k = 0; k < CN; k++)
        ids[k] = k, rev[k] = CN - 1 - k;
    crop_batch(&t, a, ids, CN, 7, 3);
    crop_batch(&t, b, ids, CN, 7, 3);
    assert_memory_equal(a, b, sizeof a); /* reproducible */
    crop_batch(&t, b, rev, CN, 7, 3);    /* the same samples in another order: the same values per sample */
    for (int k = 0; k < CN; k++)
        assert_memory_equal(a + k * CPER, b + (CN - 1 - k) * CPER, CPER * sizeof(float));
    for (int k = 0; k < CN; k++) /* one at a time, as a worker's part of a batch */
        crop_batch(&t, b + k * CPER, ids + k, 1, 7, 3);
    assert_memory_equal(a, b, sizeof a);
    int differ = 0;
    crop_batch(&t, b, ids, CN, 7, 4); /* another epoch */
    for (int k = 0; k < CN; k++)
        differ += memcmp(a + k * CPER, b + k * CPER, CPER * sizeof(float)) != 0;
    assert_true(differ >= 30);
    differ = 0;
    crop_batch(&t, b, ids, CN, 8, 3); /* another seed */
    for (int k = 0; k < CN; k++)
        differ += memcmp(a + k * CPER, b + k * CPER, CPER * sizeof(float)) != 0;
    assert_true(differ >= 30);
}

static void test_random_crop_without_padding_and_in_eval_keeps_input(void **state) {
    RtTensorSpec x = image(RT_F64, 1, 3, 3);
    RtTransforms t;
    parse_ok("[" CALL("random_crop", "[3]", "{}") "]", &x, &t);
    double v[9], w[9];
    fill(RT_F64, v, 1, 9);
    memcpy(w, v, sizeof v);
    int64_t id = 4;
    rt_transforms_apply(&t, true, RT_F64, v, &x, 1, &id, 1, 0);
    assert_memory_equal(v, w, sizeof v);
    parse_ok("[" CALL("random_crop", "[3]", "{\"padding\": 1}") ", " CALL("random_hflip", "[1.0]", "{}") "]", &x, &t);
    rt_transforms_apply(&t, false, RT_F64, v, &x, 1, &id, 1, 0); /* eval: the random ones are skipped */
    assert_memory_equal(v, w, sizeof v);
}

/* random_crop's zero borders come after the transforms before it: normalize first keeps them 0; normalize
   after turns them into -mean / std, as torchvision does in its order. */
static void test_transforms_apply_in_order(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 4, 4);
    RtTransforms a, b;
    parse_ok("[" CALL("normalize", "[0.5, 0.25]", "{}") ", " CALL("random_crop", "[4]", "{\"padding\": 3}") "]", &x,
             &a);
    parse_ok("[" CALL("random_crop", "[4]", "{\"padding\": 3}") ", " CALL("normalize", "[0.5, 0.25]", "{}") "]", &x,
             &b);
    int zeros = 0, negs = 0;
    for (int64_t id = 0; id < 20; id++) {
        float va[16], vb[16];
        fill(RT_F32, va, 1, 16);
        fill(RT_F32, vb, 1, 16);
        rt_transforms_apply(&a, true, RT_F32, va, &x, 1, &id, 3, 0);
        rt_transforms_apply(&b, true, RT_F32, vb, &x, 1, &id, 3, 0);
        for (int i = 0; i < 16; i++) {
            zeros += va[i] == 0.0f;
            negs += vb[i] == (0.0f - 0.5f) / 0.25f;
            assert_true((va[i] == 0.0f) == (vb[i] == -2.0f)); /* the same crop: one stream per sample */
        }
    }
    assert_true(zeros > 0);
    assert_int_equal(zeros, negs);
}

static int count_flips(double p, int64_t n, int64_t epoch) {
    RtTensorSpec x = image(RT_F32, 2, 2, 3);
    RtTransforms t;
    char text[256];
    snprintf(text, sizeof text, "[" CALL("random_hflip", "[]", "{\"p\": %g}") "]", p);
    parse_ok(text, &x, &t);
    int flipped = 0;
    for (int64_t id = 0; id < n; id++) {
        float v[12], in[12];
        fill(RT_F32, v, 1, 12);
        memcpy(in, v, sizeof v);
        rt_transforms_apply(&t, true, RT_F32, v, &x, 1, &id, 11, epoch);
        bool mirror = true;
        for (int i = 0; i < 12; i++)
            mirror = mirror && v[i] == in[(i / 3) * 3 + 2 - i % 3];
        if (!mirror)
            assert_memory_equal(v, in, sizeof v); /* either mirrored in every plane or untouched */
        flipped += mirror;
    }
    return flipped;
}

static void test_random_hflip_flips_about_p(void **state) {
    int half = count_flips(0.5, 2000, 0);
    assert_true(half > 900 && half < 1100);
    assert_int_equal(count_flips(1.0, 200, 0), 200);
    assert_int_equal(count_flips(0.0, 200, 0), 0);
    int q = count_flips(0.25, 2000, 1);
    assert_true(q > 420 && q < 580);
}

static void test_random_hflip_differs_across_epochs(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 1, 2);
    RtTransforms t;
    parse_ok("[" CALL("random_hflip", "[]", "{}") "]", &x, &t);
    int differ = 0;
    for (int64_t id = 0; id < 200; id++) {
        float a[2] = {1, 2}, b[2] = {1, 2};
        rt_transforms_apply(&t, true, RT_F32, a, &x, 1, &id, 5, 0);
        rt_transforms_apply(&t, true, RT_F32, b, &x, 1, &id, 5, 1);
        differ += a[0] != b[0];
    }
    assert_true(differ > 60 && differ < 140);
}

static void test_unknown_transform_suggests_closest(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 28, 28);
    parse_fails("[" CALL("random_flip", "[]", "{}") "]", &x,
                "recipe key transforms: unknown transform 'random_flip' (did you mean random_hflip(p = 0.5)?)");
    parse_fails("[" CALL("RandomCrop", "[28]", "{}") "]", &x, "(did you mean random_crop(size, padding = 0)?)");
    parse_fails("[" CALL("Normalize", "[]", "{}") "]", &x, "(did you mean normalize(mean, std)?)");
    parse_fails("[" CALL("rotate", "[]", "{}") "]", &x,
                "unknown transform 'rotate'; the transforms: scale, normalize, random_crop, random_hflip");
}

static void test_crop_and_flip_need_matching_image(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 28, 28);
    parse_fails("[" CALL("random_crop", "[32]", "{\"padding\": 4}") "]", &x,
                "recipe key transforms: random_crop: size 32 x 32 differs from the input 'x' f32[N, 1, 28, 28]");
    parse_fails("[" CALL("random_crop", "[]", "{\"padding\": 4}") "]", &x, "random_crop: size must be a positive");
    parse_fails("[" CALL("random_crop", "[28]", "{\"padding\": -1}") "]", &x,
                "recipe key transforms: random_crop: padding must be an integer of at least 0");
    parse_fails("[" CALL("random_crop", "[28]", "{\"pad\": 1}") "]", &x, "has no argument 'pad'");
    parse_fails("[" CALL("random_hflip", "[]", "{\"p\": 1.5}") "]", &x,
                "recipe key transforms: random_hflip: p must be a number from 0 to 1");
    RtTensorSpec flat = {.name = "x", .dtype = RT_F32, .rank = 2, .shape = {-1, 784}};
    parse_fails("[" CALL("random_hflip", "[]", "{}") "]", &flat,
                "random_hflip needs an image input [N, C, H, W] or [N, H, W], but the model's input is 'x' "
                "f32[N, 784]");
}

static void test_transforms_key_shape_errors(void **state) {
    RtTensorSpec x = image(RT_F32, 1, 4, 4);
    parse_fails("3", &x, "recipe key transforms: must be a list of transforms");
    parse_fails("[" CALL("scale", "[2]", "{}") ", 3]", &x, "recipe key transforms: entry 2 is not a transform");
    char many[4096] = "[";
    for (int i = 0; i < RT_MAX_TRANSFORMS + 1; i++)
        strcat(strcat(many, i ? ", " : ""), CALL("scale", "[2]", "{}"));
    strcat(many, "]");
    parse_fails(many, &x, "9 transforms; at most 8");
    RtTensorSpec tok = {.name = "x", .dtype = RT_I64, .rank = 2, .shape = {-1, 64}};
    parse_fails("[" CALL("scale", "[2]", "{}") "]", &tok, "the model's input 'x' i64[N, 64] is not a float tensor");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent_or_empty_transforms_are_none),
        cmocka_unit_test(test_normalize_per_channel_f32),
        cmocka_unit_test(test_normalize_per_channel_f64_and_one_value_broadcast),
        cmocka_unit_test(test_normalize_one_value_for_any_shape),
        cmocka_unit_test(test_normalize_channel_count_must_match),
        cmocka_unit_test(test_scale_divides_by_reciprocal_as_to_tensor),
        cmocka_unit_test(test_random_crop_shifts_with_zero_borders),
        cmocka_unit_test(test_random_crop_keyed_by_seed_epoch_and_sample),
        cmocka_unit_test(test_random_crop_without_padding_and_in_eval_keeps_input),
        cmocka_unit_test(test_transforms_apply_in_order),
        cmocka_unit_test(test_random_hflip_flips_about_p),
        cmocka_unit_test(test_random_hflip_differs_across_epochs),
        cmocka_unit_test(test_unknown_transform_suggests_closest),
        cmocka_unit_test(test_crop_and_flip_need_matching_image),
        cmocka_unit_test(test_transforms_key_shape_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
