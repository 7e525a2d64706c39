/* test_imgdir.c: the images(folder, scale, grayscale) source: class folders in sorted order as torchvision's
   ImageFolder numbers them, PNGs of every color type converted to gray or RGB as PIL converts them, PGMs
   (P5 and P2), the sizes checked against the model, every unreadable or wrong file named with its offset;
   the recipe's images(...) and a training run of the driver on a folder of images. */
#include "support.h"

#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* ts_dir/rel, the folders on the way created */
static const char *make_path(const char *rel) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", ts_dir, rel);
    for (char *s = p + strlen(ts_dir) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    return p;
}

/* A PNG of w x h pixels of the given libpng color type and bit depth; px holds the rows as PNG stores them. */
static void write_png(const char *rel, int w, int h, int color, int depth, const uint8_t *px, const png_color *pal,
                      int npal, bool interlace) {
    const char *path = make_path(rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_true(png && info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng could not write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, npal);
    png_write_info(png, info);
    png_set_packing(png); /* rows of 1-, 2- and 4-bit pixels given one a byte */
    int channels = png_get_channels(png, info);
    size_t row = (size_t)w * (size_t)channels * (depth == 16 ? 2 : 1);
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    for (int y = 0; y < h; y++)
        rows[y] = (png_bytep)px + (size_t)y * row;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    assert_int_equal(fclose(f), 0);
}

static void write_gray_png(const char *rel, int w, int h, const uint8_t *px) {
    write_png(rel, w, h, PNG_COLOR_TYPE_GRAY, 8, px, NULL, 0, false);
}

static void write_text(const char *rel, const char *text) { write_bytes(make_path(rel), text, strlen(text)); }

static RtDataSpec spec(const char *folder, bool gray) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_IMAGES, .images = folder, .scale = 1.0 / 255,
                        .grayscale = gray};
}

static int load(RtDataset *d, const RtDataSpec *s, RtErr *e) { return rt_dataset_load(d, ts_dir, s, e); }

/* A manifest of x and label i64[N] into logits. */
static RtManifest model(const char *x, const char *logits) {
    return ts_model(x, "\"dtype\": \"i64\", \"shape\": [-1]", logits);
}

/* ---------------------------------------------------------------- reading */

/* Classes in sorted folder order (B before a: byte order, as Python's sorted), files sorted in each; a
   file of another extension and a sub-folder are no samples. */
static void test_images_classes_and_files_in_sorted_order(void **state) {
    uint8_t a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {9, 10, 11, 12};
    write_gray_png("f/a/2.png", 2, 2, b);
    write_gray_png("f/a/10.png", 2, 2, a); /* "10.png" < "2.png" */
    write_gray_png("f/B/x.PNG", 2, 2, c);
    write_text("f/B/notes.txt", "not an image");
    mkdir(make_path("f/B/sub/"), 0755);
    RtDataSpec s = spec("f", true);
    s.scale = 1;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.per_sample, 4);
    assert_int_equal(d.nclass_names, 2);
    assert_string_equal(d.class_names[0], "B");
    assert_string_equal(d.class_names[1], "a");
    int64_t idx[3] = {0, 1, 2}, lab[3];
    float x[12];
    rt_dataset_gather(&d, idx, 3, RT_F32, x, RT_I64, lab);
    float want[12] = {9, 10, 11, 12, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(x, want, sizeof want);
    assert_int_equal(lab[0], 0);
    assert_int_equal(lab[1], 1);
    assert_int_equal(lab[2], 1);
    assert_true(rt_dataset_label(&d, 2, 0) == 1);
    rt_dataset_free(&d);
}

/* RGB to gray with PIL's convert("L") (L = (19595 R + 38470 G + 7471 B + 2^15) >> 16); RGB kept channel-major
   with grayscale = false; scale 1/255 divides as ToTensor. */
static void test_images_rgb_to_gray_and_rgb_planes(void **state) {
    uint8_t rgb[2 * 1 * 3] = {255, 0, 0, 10, 200, 30};
    write_png("c/k/rgb.png", 2, 1, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0, false);
    RtDataSpec s = spec("c", true);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.per_sample, 2);
    assert_int_equal(d.images[0], (255 * 19595 + 0x8000) >> 16);        /* 76 */
    assert_int_equal(d.images[1], (10 * 19595 + 200 * 38470 + 30 * 7471 + 0x8000) >> 16);
    int64_t i = 0;
    float x[2];
    rt_dataset_gather(&d, &i, 1, RT_F32, x, RT_I64, NULL);
    assert_true(x[0] == 76.0f / 255.0f);
    rt_dataset_free(&d);
    s = spec("c", false);
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.per_sample, 6);
    uint8_t planes[6] = {255, 10, 0, 200, 0, 30};
    assert_memory_equal(d.images, planes, 6);
    rt_dataset_free(&d);
}

/* Palette, 16-bit, gray with alpha, RGBA, 1-bit gray and Adam7 interlacing all end as the same 8-bit gray. */
static void test_images_png_color_types_converted(void **state) {
    uint8_t gray[4] = {0, 85, 170, 255};
    write_gray_png("t/a/0-gray.png", 2, 2, gray);
    png_color pal[4] = {{0, 0, 0}, {85, 85, 85}, {170, 170, 170}, {255, 255, 255}};
    uint8_t idx[4] = {0, 1, 2, 3};
    write_png("t/a/1-palette.png", 2, 2, PNG_COLOR_TYPE_PALETTE, 8, idx, pal, 4, false);
    uint8_t g16[8] = {0, 0, 85, 85, 170, 170, 255, 255}; /* big-endian 16-bit samples */
    write_png("t/a/2-16bit.png", 2, 2, PNG_COLOR_TYPE_GRAY, 16, g16, NULL, 0, false);
    uint8_t ga[8] = {0, 9, 85, 9, 170, 9, 255, 9};
    write_png("t/a/3-alpha.png", 2, 2, PNG_COLOR_TYPE_GA, 8, ga, NULL, 0, false);
    uint8_t rgba[16] = {0, 0, 0, 1, 85, 85, 85, 1, 170, 170, 170, 1, 255, 255, 255, 1};
    write_png("t/a/4-rgba.png", 2, 2, PNG_COLOR_TYPE_RGBA, 8, rgba, NULL, 0, false);
    write_png("t/a/5-interlaced.png", 2, 2, PNG_COLOR_TYPE_GRAY, 8, gray, NULL, 0, true);
    uint8_t bits[4] = {0, 1, 1, 0}; /* 1-bit gray: 0 or 255 */
    write_png("t/a/6-1bit.png", 2, 2, PNG_COLOR_TYPE_GRAY, 1, bits, NULL, 0, false);
    RtDataSpec s = spec("t", true);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 7);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(d.images + 4 * i, gray, 4);
    uint8_t want_bits[4] = {0, 255, 255, 0};
    assert_memory_equal(d.images + 24, want_bits, 4);
    rt_dataset_free(&d);
    /* gray into RGB: the value in each channel */
    s = spec("t", false);
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_memory_equal(d.images + 4, gray, 4);
    assert_memory_equal(d.images + 8, gray, 4);
    rt_dataset_free(&d);
}

/* P5 and P2 with comments; maxval below 255 scaled to 0..255 as Pillow does (round(v / maxval * 255)). */
static void test_images_pgm_binary_and_ascii(void **state) {
    write_bytes(make_path("p/x/a.pgm"), "P5\n# a comment\n2 2\n255\n\x00\x7f\x80\xff", 27);
    write_text("p/x/b.pgm", "P2 2 2 # size\n15\n0 1\n  14 15\n");
    RtDataSpec s = spec("p", true);
    s.scale = 1;
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    assert_int_equal(d.count, 2);
    uint8_t want[8] = {0, 127, 128, 255, 0, 17, 238, 255};
    assert_memory_equal(d.images, want, 8);
    rt_dataset_free(&d);
}

/* ---------------------------------------------------------------- the model */

/* The model's input fixes H and W: an image of another size is named with its size. */
static void test_images_size_other_than_model_names_file(void **state) {
    uint8_t px[12] = {0};
    write_gray_png("s/a/ok.png", 2, 2, px);
    write_gray_png("s/b/wide.png", 3, 2, px);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1, 2, 2]", "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    json_t *v = json_pack("{s:s, s:[s]}", "call", "images", "args", "s");
    RtDataSpec s;
    RtErr e;
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_OK);
    assert_int_equal(s.height, 2);
    assert_int_equal(s.width, 2);
    assert_true(s.grayscale);
    assert_true(s.scale == 1.0 / 255);
    RtDataset d;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "s/b/wide.png: 3x2 pixels (width x height), but the model's input takes 2x2");
    /* a flat input: the first image gives the size */
    s.width = s.height = 0;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, "wide.png: 3x2 pixels (width x height), but the first image has 2x2");
    json_decref(v);
    rt_manifest_free(&m);
}

static void test_images_channels_against_model(void **state) {
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 1, 8, 8]", "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    json_t *v = json_pack("{s:s, s:[s], s:{s:b}}", "call", "images", "args", "s", "kwargs", "grayscale", 0);
    RtDataSpec s;
    RtErr e;
    assert_int_equal(rt_data_spec_parse(v, &m, "data", &s, &e), RT_ERR);
    assert_contains(e.msg, "recipe key data: images(..., grayscale = false) gives 3 channels [N, 3, H, W], but the "
                           "model's input 'x' is f32[N, 1, 8, 8]");
    json_decref(v);
    rt_manifest_free(&m);
}

static void test_images_more_classes_than_model(void **state) {
    uint8_t px[4] = {0};
    write_gray_png("k/a/1.png", 2, 2, px);
    write_gray_png("k/b/1.png", 2, 2, px);
    write_gray_png("k/c/1.png", 2, 2, px);
    RtDataSpec s = spec("k", true);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_OK);
    RtManifest m = model("\"dtype\": \"f32\", \"shape\": [-1, 4]", "\"dtype\": \"f32\", \"shape\": [-1, 2]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "k: class folder 2 ('c') is beyond the model's 2 classes");
    rt_manifest_free(&m);
    m = model("\"dtype\": \"f32\", \"shape\": [-1, 9]", "\"dtype\": \"f32\", \"shape\": [-1, 3]");
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_ERR);
    assert_contains(e.msg, "k: its images give 4 values each, but the model's input 'x' f32[N, 9] takes 9 per sample");
    rt_dataset_free(&d);
    rt_manifest_free(&m);
}

/* ---------------------------------------------------------------- bad folders and files */

static void expect_load_error(const char *folder, const char *msg) {
    RtDataSpec s = spec(folder, true);
    RtDataset d;
    RtErr e;
    assert_int_equal(load(&d, &s, &e), RT_ERR);
    assert_contains(e.msg, msg);
}

static void test_images_missing_and_empty_folders(void **state) {
    expect_load_error("none", "none: cannot open folder: No such file");
    mkdir(make_path("empty/"), 0755);
    expect_load_error("empty", "empty: no class folders");
    mkdir(make_path("ec/a/"), 0755);
    write_text("ec/a/readme", "x");
    expect_load_error("ec", "ec/a: no .png or .pgm files");
}

static void test_images_not_a_png(void **state) {
    write_text("n/a/fake.png", "GIF89a....");
    expect_load_error("n", "n/a/fake.png: byte 0: not a PNG file (bad signature)");
}

/* A PNG cut in its pixel data, and one whose data chunk is damaged: libpng's message and the offset reached. */
static void test_images_truncated_and_corrupt_png(void **state) {
    uint8_t px[64 * 64];
    for (int i = 0; i < 64 * 64; i++)
        px[i] = (uint8_t)(i * 31 % 251);
    write_gray_png("tr/a/img.png", 64, 64, px);
    const char *p = make_path("tr/a/img.png");
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(truncate(p, st.st_size / 2), 0);
    expect_load_error("tr", "tr/a/img.png: byte ");
    expect_load_error("tr", "unreadable PNG");
    write_gray_png("cr/a/img.png", 64, 64, px);
    p = make_path("cr/a/img.png");
    FILE *f = fopen(p, "r+b");
    fseek(f, 60, SEEK_SET); /* inside the IDAT chunk: its CRC no longer matches */
    fputc(0x55, f);
    fclose(f);
    expect_load_error("cr", "cr/a/img.png: byte ");
    expect_load_error("cr", "unreadable PNG");
    write_bytes(make_path("sh/a/s.png"), "\x89PNG", 4);
    expect_load_error("sh", "sh/a/s.png: truncated at byte offset 4");
}

static void test_images_bad_pgms(void **state) {
    write_text("g1/a/x.pgm", "P6\n2 2\n255\n");
    expect_load_error("g1", "g1/a/x.pgm: byte 0: not a PGM file");
    write_text("g2/a/x.pgm", "P2\n2 2\n100\n0 1 101 3\n");
    expect_load_error("g2", "g2/a/x.pgm: byte 15: value 101 exceeds maxval 100");
    write_bytes(make_path("g3/a/x.pgm"), "P5\n2 2\n255\n\x01\x02", 13);
    expect_load_error("g3", "g3/a/x.pgm: truncated at byte offset 13: a 2x2 image needs 4 bytes after the header");
    write_text("g4/a/x.pgm", "P5\n2 2\n65535\n");
    expect_load_error("g4", "g4/a/x.pgm: maxval 65535: only 8-bit PGMs");
    write_text("g5/a/x.pgm", "P2\n2 x\n");
    expect_load_error("g5", "g5/a/x.pgm: byte 5: expected the height (a decimal number), got 'x'");
    write_text("g6/a/x.pgm", "P2\n2 2\n9\n1 2 3");
    expect_load_error("g6", "g6/a/x.pgm: truncated at byte offset 14: expected the pixel 3 of 4");
    /* a header that claims 180M pixels in a 20-byte file is refused before anything is allocated for it (a
       fuzzing find: the dataset's buffer came from the first image's header alone) */
    write_text("g7/a/x.pgm", "P2\n2755 65535\n2\n1 2\n");
    expect_load_error("g7", "g7/a/x.pgm: truncated at byte offset 20: a 2755x65535 image needs at least 180548925 bytes");
}

/* ---------------------------------------------------------------- the driver */

/* The fake model (x f32[N, 4] into 3 classes) learns 2x2 images whose bright pixel is the class; predict
   runs on them too. */
static void test_driver_trains_on_image_folder(void **state) {
    const char *names[3] = {"zero", "one", "two"};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 8; i++) {
            uint8_t px[4] = {(uint8_t)(i * 3), (uint8_t)(i * 5), (uint8_t)(i * 2), 20};
            px[c] = 250;
            char rel[64];
            snprintf(rel, sizeof rel, "dr/%d-%s/%02d.%s", c, names[c], i, i % 2 ? "png" : "pgm");
            if (i % 2) {
                write_gray_png(rel, 2, 2, px);
            } else {
                char pgm[64];
                int n = snprintf(pgm, sizeof pgm, "P5 2 2 255\n");
                memcpy(pgm + n, px, 4);
                write_bytes(make_path(rel), pgm, (size_t)n + 4);
            }
        }
    json_error_t je;
    json_t *root = json_loads(lathe_manifest, 0, &je);
    json_t *recipe = json_object_get(root, "recipe");
    json_object_set_new(recipe, "data", json_pack("{s:s, s:[s]}", "call", "images", "args", "dr"));
    json_object_set_new(recipe, "test", json_pack("{s:s, s:[s]}", "call", "images", "args", "dr"));
    char *manifest = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *out = NULL, *err = NULL;
    const char *args[] = {"train", "--data", ts_dir, "--epochs", "20", "--batch", "4", NULL};
    int status = run_driver_with(manifest, lathe_train, lathe_eval, lathe_predict, &out, &err, args);
    if (status != 0)
        fail_msg("%s", err);
    assert_contains(out, "Accuracy: 100.0%");
    free(out);
    free(err);
    free(manifest);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_images_classes_and_files_in_sorted_order),
        cmocka_unit_test(test_images_rgb_to_gray_and_rgb_planes),
        cmocka_unit_test(test_images_png_color_types_converted),
        cmocka_unit_test(test_images_pgm_binary_and_ascii),
        cmocka_unit_test(test_images_size_other_than_model_names_file),
        cmocka_unit_test(test_images_channels_against_model),
        cmocka_unit_test(test_images_more_classes_than_model),
        cmocka_unit_test(test_images_missing_and_empty_folders),
        cmocka_unit_test(test_images_not_a_png),
        cmocka_unit_test(test_images_truncated_and_corrupt_png),
        cmocka_unit_test(test_images_bad_pgms),
        cmocka_unit_test(test_driver_trains_on_image_folder),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
