/* test_csv.c: csv(file, header, label_column, regression, features, labels, delimiter): quoted cells as
   Python's csv module reads them, the feature columns chosen by index or header name in their order, labels
   that are class names (sorted into classes 0..C-1) or numbers, other delimiters, a test file's class names
   renumbered by the training file's, and each bad file or recipe value one message naming the file and line. */
#include "support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* The spec of csv(name) as the recipe's defaults give it. */
static RtDataSpec spec(const char *name) {
    return (RtDataSpec){.present = true, .kind = RT_DATA_CSV, .images = name, .header = true, .label_column = -1,
                        .delimiter = ','};
}

/* The spec parsed from the recipe value csv(name, KWARGS...) (kwargs: a JSON object's text) */
static int parse(const char *name, const char *kwargs, RtDataSpec *s, json_t **keep, RtErr *e) {
    json_t *kw = ts_json(kwargs);
    *keep = json_pack("{s:s, s:[s], s:o}", "call", "csv", "args", name, "kwargs", kw);
    RtManifest m = {0};
    return rt_data_spec_parse(*keep, &m, "data", s, e);
}

static void load_ok(RtDataset *d, const RtDataSpec *s) {
    RtErr e;
    if (rt_dataset_load(d, ts_dir, s, &e) != RT_OK)
        fail_msg("%s", e.msg);
}

static void expect_load_error(const char *name, const char *text, const RtDataSpec *s, const char *msg) {
    ts_write_text(name, text);
    RtDataset d;
    RtErr e;
    assert_int_equal(rt_dataset_load(&d, ts_dir, s, &e), RT_ERR);
    assert_contains(e.msg, name);
    assert_contains(e.msg, msg);
    rt_dataset_free(&d);
}

/* A manifest of x f32[N, features] and label i64[N] into `classes` logits. */
static RtManifest model(int features, int classes) {
    char x[64], logits[64];
    snprintf(x, sizeof x, "\"dtype\": \"f32\", \"shape\": [-1, %d]", features);
    snprintf(logits, sizeof logits, "\"dtype\": \"f32\", \"shape\": [-1, %d]", classes);
    return ts_model(x, "\"dtype\": \"i64\", \"shape\": [-1]", logits);
}

static const char *IRIS = "id,sepal_length,sepal_width,petal_length,petal_width,species\n"
                          "a1,5.1,3.5,1.4,0.2,setosa\n"
                          "a2,7.0,3.2,4.7,1.4,versicolor\n"
                          "a3,6.3,3.3,6.0,2.5,virginica\n"
                          "a4,4.9,3.0,1.4,0.2,setosa\n";

/* ---------------------------------------------------------------- records and columns */

static void test_csv_categorical_labels_become_sorted_classes(void **state) {
    ts_write_text("iris.csv", "x,species\n1,virginica\n2,setosa\n3,versicolor\n4,setosa\n");
    RtDataSpec s = spec("iris.csv");
    RtDataset d;
    load_ok(&d, &s);
    assert_int_equal(d.count, 4);
    assert_int_equal(d.nclass_names, 3);
    assert_string_equal(d.class_names[0], "setosa");
    assert_string_equal(d.class_names[1], "versicolor");
    assert_string_equal(d.class_names[2], "virginica");
    assert_true(d.targets[0] == 2 && d.targets[1] == 0 && d.targets[2] == 1 && d.targets[3] == 0);
    RtManifest m = model(1, 3);
    RtErr e;
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    rt_manifest_free(&m);
    rt_dataset_free(&d);
}

static void test_csv_categorical_numbers_sort_as_bytes(void **state) {
    ts_write_text("n.csv", "x,y\n1,9\n2,10\n3,9\n");
    RtDataSpec s = spec("n.csv");
    s.labels_kind = RT_LABELS_CATEGORICAL;
    RtDataset d;
    load_ok(&d, &s);
    assert_int_equal(d.nclass_names, 2);
    assert_string_equal(d.class_names[0], "10");
    assert_true(d.targets[0] == 1 && d.targets[1] == 0);
    rt_dataset_free(&d);
}

static void test_csv_numeric_labels_stay_class_indices(void **state) {
    ts_write_text("num.csv", "x,y\n1,2\n2,0\n");
    RtDataSpec s = spec("num.csv");
    RtDataset d;
    load_ok(&d, &s);
    assert_null(d.class_names);
    assert_true(d.targets[0] == 2 && d.targets[1] == 0);
    rt_dataset_free(&d);
}

static void test_csv_features_by_index_in_order_given(void **state) {
    ts_write_text("iris.csv", IRIS);
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("iris.csv", "{\"features\": [4, 1, -3]}", &s, &keep, &e), RT_OK);
    RtDataset d;
    load_ok(&d, &s);
    assert_int_equal(d.per_sample, 3);
    int64_t i = 1, y;
    double x[3];
    rt_dataset_gather(&d, &i, 1, RT_F64, x, RT_I64, &y);
    assert_true(x[0] == 1.4 && x[1] == 7.0 && x[2] == 4.7); /* the id column is never read */
    assert_int_equal(y, 1);
    RtManifest m = model(3, 3), m4 = model(4, 3);
    assert_int_equal(rt_dataset_check(&d, &m, "data", &e), RT_OK);
    assert_int_equal(rt_dataset_check(&d, &m4, "data", &e), RT_ERR);
    assert_contains(e.msg, "3 feature columns");
    rt_manifest_free(&m);
    rt_manifest_free(&m4);
    rt_dataset_free(&d);
    json_decref(keep);
}

static void test_csv_features_and_label_by_header_name(void **state) {
    ts_write_text("iris.csv", IRIS);
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("iris.csv", "{\"features\": [\"petal_width\", \"sepal_length\"], \"label_column\": "
                           "\"species\"}", &s, &keep, &e), RT_OK);
    RtDataset d;
    load_ok(&d, &s);
    assert_int_equal(d.per_sample, 2);
    int64_t i = 2, y;
    double x[2];
    rt_dataset_gather(&d, &i, 1, RT_F64, x, RT_I64, &y);
    assert_true(x[0] == 2.5 && x[1] == 6.3);
    assert_int_equal(y, 2);
    assert_string_equal(d.class_names[y], "virginica");
    rt_dataset_free(&d);
    json_decref(keep);
}

static void test_csv_label_column_by_name_in_the_middle(void **state) {
    ts_write_text("mid.csv", "a,cls,b\n1,x,2\n3,y,4\n");
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("mid.csv", "{\"label_column\": \"cls\"}", &s, &keep, &e), RT_OK);
    RtDataset d;
    load_ok(&d, &s);
    assert_int_equal(d.per_sample, 2);
    assert_true(d.features[2] == 3 && d.features[3] == 4);
    assert_true(d.targets[1] == 1);
    rt_dataset_free(&d);
    json_decref(keep);
}

static void test_csv_unknown_column_name_suggests_closest(void **state) {
    ts_write_text("iris.csv", IRIS);
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("iris.csv", "{\"features\": [\"petal_widht\"]}", &s, &keep, &e), RT_OK);
    RtDataset d;
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "iris.csv: csv(..., features): the header has no column 'petal_widht' (did you mean "
                           "'petal_width'?)");
    rt_dataset_free(&d);
    json_decref(keep);
    assert_int_equal(parse("iris.csv", "{\"label_column\": \"zzzzzz\"}", &s, &keep, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "no column 'zzzzzz' (its columns: 'id', 'sepal_length'");
    rt_dataset_free(&d);
    json_decref(keep);
}

static void test_csv_features_holding_the_label_or_twice_rejected(void **state) {
    ts_write_text("iris.csv", IRIS);
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    RtDataset d;
    assert_int_equal(parse("iris.csv", "{\"features\": [1, -1]}", &s, &keep, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "gives the column at index 5 (the column 'species') that is the label's");
    rt_dataset_free(&d);
    json_decref(keep);
    assert_int_equal(parse("iris.csv", "{\"features\": [1, \"sepal_length\"]}", &s, &keep, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "gives the column at index 1 (the column 'sepal_length') twice");
    rt_dataset_free(&d);
    json_decref(keep);
    assert_int_equal(parse("iris.csv", "{\"features\": [6]}", &s, &keep, &e), RT_OK);
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "iris.csv:2: features holds 6, but the records have 6 columns");
    rt_dataset_free(&d);
    json_decref(keep);
}

/* ---------------------------------------------------------------- quoting and delimiters */

static void test_csv_quoted_cells_as_python_reads_them(void **state) {
    /* a quoted label holds the delimiter, "" and a line end; the records after it keep their line numbers */
    ts_write_text("q.csv", "f,\"the \"\"label\"\"\"\n"
                           "1,\"a,b\"\n"
                           "\"2.5\",\"two\nlines\"\n"
                           "3,  \" padded \"  \n"
                           "x,a\n");
    RtDataSpec s = spec("q.csv");
    RtDataset d;
    RtErr e;
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR);
    assert_contains(e.msg, "q.csv:6: column 1: 'x' is not a number (feature column 'f')");
    rt_dataset_free(&d);
    ts_write_text("q.csv", "f,\"the \"\"label\"\"\"\n1,\"a,b\"\n\"2.5\",\"two\nlines\"\n3,  \" padded \"  \n");
    load_ok(&d, &s);
    assert_int_equal(d.count, 3);
    assert_int_equal(d.nclass_names, 3);
    assert_string_equal(d.class_names[0], " padded ");
    assert_string_equal(d.class_names[1], "a,b");
    assert_string_equal(d.class_names[2], "two\nlines");
    assert_true(d.features[1] == 2.5);
    assert_true(d.lines[0] == 2 && d.lines[1] == 3 && d.lines[2] == 5);
    rt_dataset_free(&d);
}

static void test_csv_unclosed_quote_names_its_line(void **state) {
    RtDataSpec s = spec("uq.csv");
    expect_load_error("uq.csv", "a,b\n1,x\n2,\"open\n3,y\n", &s, "uq.csv:3: the quoted cell that starts on this "
                      "line has no closing '\"'");
}

static void test_csv_semicolon_and_tab_delimiters(void **state) {
    ts_write_text("semi.csv", "a;b;c\n1,5;2;x\n3;4;y\n");
    RtDataSpec s = spec("semi.csv");
    s.delimiter = ';';
    RtDataset d;
    RtErr e;
    assert_int_equal(rt_dataset_load(&d, ts_dir, &s, &e), RT_ERR); /* "1,5" is one cell, not a number */
    assert_contains(e.msg, "semi.csv:2: column 1: '1,5' is not a number (feature column 'a')");
    rt_dataset_free(&d);
    ts_write_text("tab.tsv", "a\tb\tlabel\n 1 \t2\tcat dog\n3\t4\tbird\n");
    s = spec("tab.tsv");
    s.delimiter = '\t';
    load_ok(&d, &s);
    assert_int_equal(d.per_sample, 2);
    assert_true(d.features[0] == 1 && d.features[3] == 4);
    assert_string_equal(d.class_names[1], "cat dog");
    rt_dataset_free(&d);
}

/* ---------------------------------------------------------------- bad labels and cells */

static void test_csv_non_number_feature_names_header_column(void **state) {
    RtDataSpec s = spec("bad.csv");
    expect_load_error("bad.csv", "w,h,k\n1,2,a\n3,tall,b\n", &s, "bad.csv:3: column 2: 'tall' is not a number "
                      "(feature column 'h')");
    s.header = false;
    expect_load_error("bad2.csv", "1,2,a\n3,tall,b\n", &(RtDataSpec){.present = true, .kind = RT_DATA_CSV,
                      .images = "bad2.csv", .label_column = -1}, "bad2.csv:2: column 2: 'tall' is not a number");
}

static void test_csv_numeric_labels_refuse_names(void **state) {
    RtDataSpec s = spec("ln.csv");
    s.labels_kind = RT_LABELS_NUMERIC;
    expect_load_error("ln.csv", "x,y\n1,0\n2,setosa\n", &s, "ln.csv:3: column 2: label 'setosa' is not a number "
                      "(label column 'y'); csv(..., labels = \"categorical\") reads class names");
    s = spec("lr.csv");
    s.regression = true;
    expect_load_error("lr.csv", "x,y\n1,0.5\n2,big\n", &s, "lr.csv:3: column 2: label 'big' is not a number "
                      "(label column 'y'); csv(..., regression = true) needs numbers");
}

static void test_csv_auto_labels_mixing_numbers_and_names_rejected(void **state) {
    RtDataSpec s = spec("mix.csv");
    expect_load_error("mix.csv", "x,y\n1,0\n2,1\n3,one\n", &s, "mix.csv:4: column 2: the label 'one' is not a "
                      "number, but the label '0' on line 2 is one; csv(..., labels = \"categorical\")");
    expect_load_error("mix2.csv", "x,y\n1,cat\n2,7\n", &(RtDataSpec){.present = true, .kind = RT_DATA_CSV,
                      .images = "mix2.csv", .header = true, .label_column = -1},
                      "mix2.csv:3: column 2: the label '7' is a number, but the label 'cat' on line 2 is not");
}

static void test_csv_empty_label_and_ragged_header_rejected(void **state) {
    RtDataSpec s = spec("el.csv");
    expect_load_error("el.csv", "x,y\n1,a\n2,\n", &s, "el.csv:3: column 2 is empty (the record has no label)");
    s = spec("rh.csv");
    expect_load_error("rh.csv", "x,y\n1,2,3\n", &s, "rh.csv:2: 3 cells, but the header has 2");
}

/* ---------------------------------------------------------------- the recipe */

static void test_csv_recipe_arguments_checked(void **state) {
    static const struct {
        const char *kwargs, *msg;
    } cases[] = {
        {"{\"features\": []}", "csv's features must be a list of column indices"},
        {"{\"features\": [1.5]}", "csv's features must be a list of column indices"},
        {"{\"features\": \"a\"}", "csv's features must be a list of column indices"},
        {"{\"header\": false, \"features\": [\"a\"]}", "csv's features name the column 'a', which needs header = "
                                                        "true"},
        {"{\"header\": false, \"label_column\": \"y\"}", "label_column = \"y\" names a column, which needs header"},
        {"{\"labels\": \"words\"}", "csv's labels must be \"auto\", \"numeric\" or \"categorical\""},
        {"{\"labels\": \"categorical\", \"regression\": true}", "regression = true) reads numbers as labels"},
        {"{\"delimiter\": \";;\"}", "csv's delimiter must be one byte"},
        {"{\"delimiter\": \"\\\"\"}", "csv's delimiter must be one byte"},
        {"{\"delimiter\": 1}", "csv's delimiter must be one byte"},
        {"{\"labelz\": 1}", "has no argument 'labelz'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *keep;
        RtDataSpec s;
        RtErr e;
        assert_int_equal(parse("f.csv", cases[i].kwargs, &s, &keep, &e), RT_ERR);
        assert_contains(e.msg, "recipe key data: ");
        assert_contains(e.msg, cases[i].msg);
        json_decref(keep);
    }
    json_t *keep;
    RtDataSpec s;
    RtErr e;
    assert_int_equal(parse("f.csv", "{\"delimiter\": \"\\t\", \"labels\": \"numeric\"}", &s, &keep, &e), RT_OK);
    assert_int_equal(s.delimiter, '\t');
    assert_int_equal(s.labels_kind, RT_LABELS_NUMERIC);
    json_decref(keep);
}

/* ---------------------------------------------------------------- a test file's classes */

/* FOLDER/CLASS/x.pgm for the class folder FOLDER/CLASS */
static const char *class_file(const char *folder) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/x.pgm", folder);
    return buf;
}

static void test_csv_test_classes_renumbered_by_training_names(void **state) {
    ts_write_text("train.csv", "x,y\n1,ant\n2,bee\n3,cat\n");
    ts_write_text("test.csv", "x,y\n4,cat\n5,bee\n"); /* alone: bee 0, cat 1 */
    RtDataSpec s = spec("train.csv"), t = spec("test.csv");
    RtDataset train, test;
    RtErr e;
    load_ok(&train, &s);
    load_ok(&test, &t);
    assert_true(test.targets[0] == 1 && test.targets[1] == 0);
    assert_int_equal(rt_dataset_same_classes(&train, &test, &e), RT_OK);
    assert_true(test.targets[0] == 2 && test.targets[1] == 1);
    assert_int_equal(test.nclass_names, 3);
    assert_string_equal(test.class_names[2], "cat");
    rt_dataset_free(&test);
    ts_write_text("test2.csv", "x,y\n4,cat\n\n5,dog\n");
    t = spec("test2.csv");
    load_ok(&test, &t);
    assert_int_equal(rt_dataset_same_classes(&train, &test, &e), RT_ERR);
    assert_contains(e.msg, "test2.csv:4: class 'dog' is not a class of the training data");
    assert_contains(e.msg, "train.csv (its 3 classes: 'ant' to 'cat')");
    rt_dataset_free(&test);
    ts_write_text("test3.csv", "x,y\n4,1\n");
    t = spec("test3.csv");
    load_ok(&test, &t);
    assert_int_equal(rt_dataset_same_classes(&train, &test, &e), RT_ERR);
    assert_contains(e.msg, "test3.csv: its labels are numbers, but those of the training data");
    assert_int_equal(rt_dataset_same_classes(&test, &test, &e), RT_OK); /* numbers: nothing to do */
    rt_dataset_free(&test);
    rt_dataset_free(&train);
}

/* image folders have the same problem: a test folder without class a numbers b as 0 */
static void test_images_test_classes_renumbered_by_training_folders(void **state) {
    static const char *const paths[] = {"itrain", "itrain/a", "itrain/b", "itrain/c", "itest", "itest/b",
                                        "itest/c", "ibad", "ibad/d"};
    char p[512];
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        assert_int_equal(mkdir(tmp_path(p, sizeof p, ts_dir, paths[i]), 0755), 0);
        if (strchr(paths[i], '/'))
            write_bytes(tmp_path(p, sizeof p, ts_dir, class_file(paths[i])), "P5\n1 1\n255\n\x10", 12);
    }
    RtDataSpec s = {.present = true, .kind = RT_DATA_IMAGES, .images = "itrain", .scale = 1, .grayscale = true};
    RtDataset train, test;
    RtErr e;
    load_ok(&train, &s);
    s.images = "itest";
    load_ok(&test, &s);
    assert_int_equal(rt_dataset_label(&test, 0, 0), 0); /* b, alone */
    assert_int_equal(rt_dataset_same_classes(&train, &test, &e), RT_OK);
    assert_int_equal(rt_dataset_label(&test, 0, 0), 1);
    assert_int_equal(rt_dataset_label(&test, 1, 0), 2);
    assert_string_equal(test.class_names[0], "a");
    rt_dataset_free(&test);
    s.images = "ibad";
    load_ok(&test, &s);
    assert_int_equal(rt_dataset_same_classes(&train, &test, &e), RT_ERR);
    assert_contains(e.msg, "ibad: class folder 'd' is not a class folder of the training data");
    rt_dataset_free(&test);
    rt_dataset_free(&train);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_categorical_labels_become_sorted_classes),
        cmocka_unit_test(test_csv_categorical_numbers_sort_as_bytes),
        cmocka_unit_test(test_csv_numeric_labels_stay_class_indices),
        cmocka_unit_test(test_csv_features_by_index_in_order_given),
        cmocka_unit_test(test_csv_features_and_label_by_header_name),
        cmocka_unit_test(test_csv_label_column_by_name_in_the_middle),
        cmocka_unit_test(test_csv_unknown_column_name_suggests_closest),
        cmocka_unit_test(test_csv_features_holding_the_label_or_twice_rejected),
        cmocka_unit_test(test_csv_quoted_cells_as_python_reads_them),
        cmocka_unit_test(test_csv_unclosed_quote_names_its_line),
        cmocka_unit_test(test_csv_semicolon_and_tab_delimiters),
        cmocka_unit_test(test_csv_non_number_feature_names_header_column),
        cmocka_unit_test(test_csv_numeric_labels_refuse_names),
        cmocka_unit_test(test_csv_auto_labels_mixing_numbers_and_names_rejected),
        cmocka_unit_test(test_csv_empty_label_and_ragged_header_rejected),
        cmocka_unit_test(test_csv_recipe_arguments_checked),
        cmocka_unit_test(test_csv_test_classes_renumbered_by_training_names),
        cmocka_unit_test(test_images_test_classes_renumbered_by_training_folders),
    };
    return cmocka_run_group_tests(tests, ts_setup_dir, ts_teardown_dir);
}
