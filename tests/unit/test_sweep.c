/* test_sweep.c: lathe sweep's command line, values and table (cli/sweep.c): top-level comma splitting, the
   grid's cross product, seeded draws within their bounds, one message for each bad flag, the ranking, and
   the CSV's quoting. Running trials is tests/e2e/sweep.sh. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../cli/sweep.h"

/* sweep_parse_args over the words of `args` (at most 32, split at spaces; argv[0] is "sweep") */
static bool parse(Sweep *s, const char *args) {
    static char buf[1024];
    static char *argv[33];
    int argc = 0;
    snprintf(buf, sizeof buf, "sweep %s", args);
    for (char *w = strtok(buf, " "); w && argc < 32; w = strtok(NULL, " "))
        argv[argc++] = w;
    sweep_init(s);
    return sweep_parse_args(s, argc, argv);
}

static void test_sweep_split_at_top_level_commas(void **state) {
    char **items, err[256];
    int n;
    assert_true(sweep_split(" 1e-3, Adam(lr = 1, betas = (0.9, 0.99)) ,[1, 2], \"a,b\", 'c)'", &items, &n, err,
                            sizeof err));
    assert_int_equal(n, 5);
    assert_string_equal(items[0], "1e-3");
    assert_string_equal(items[1], "Adam(lr = 1, betas = (0.9, 0.99))");
    assert_string_equal(items[2], "[1, 2]");
    assert_string_equal(items[3], "\"a,b\"");
    assert_string_equal(items[4], "'c)'");
    for (int i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

static void test_sweep_split_rejects_empty_and_unbalanced(void **state) {
    char **items, err[256];
    int n;
    assert_false(sweep_split("1,,2", &items, &n, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
    assert_false(sweep_split("", &items, &n, err, sizeof err));
    assert_false(sweep_split("Adam(lr = 1", &items, &n, err, sizeof err));
    assert_non_null(strstr(err, "not closed"));
    assert_false(sweep_split("f(1]", &items, &n, err, sizeof err));
    assert_non_null(strstr(err, "unmatched"));
    assert_false(sweep_split("\"a", &items, &n, err, sizeof err));
    assert_non_null(strstr(err, "quote"));
}

static void test_sweep_grid_is_the_cross_product_last_axis_fastest(void **state) {
    Sweep s;
    assert_true(parse(&s, "m.lathe --grid lr=1e-3,1e-2 --grid batch=64,128,256 -- --epochs 1"));
    assert_true(sweep_plan(&s));
    assert_int_equal(s.ntrials, 6);
    assert_int_equal(s.npass, 2);
    assert_string_equal(s.pass[0], "--epochs");
    const char *want[6][2] = {{"1e-3", "64"}, {"1e-3", "128"}, {"1e-3", "256"},
                              {"1e-2", "64"}, {"1e-2", "128"}, {"1e-2", "256"}};
    for (int t = 0; t < 6; t++) {
        assert_int_equal(s.trials[t].id, t + 1);
        assert_string_equal(s.trials[t].values[0], want[t][0]);
        assert_string_equal(s.trials[t].values[1], want[t][1]);
    }
    sweep_free(&s);
}

static void test_sweep_random_same_seed_same_trials(void **state) {
    Sweep a, b, c;
    const char *args = "m.lathe --random 5 lr=log(1e-4,1e-1) batch=choice(32,64,128) --seed 7";
    assert_true(parse(&a, args) && sweep_plan(&a));
    assert_true(parse(&b, args) && sweep_plan(&b));
    assert_true(parse(&c, "m.lathe --random 5 lr=log(1e-4,1e-1) batch=choice(32,64,128) --seed 8") &&
                sweep_plan(&c));
    assert_int_equal(a.ntrials, 5);
    bool differs = false;
    for (int t = 0; t < 5; t++) {
        assert_string_equal(a.trials[t].values[0], b.trials[t].values[0]);
        assert_string_equal(a.trials[t].values[1], b.trials[t].values[1]);
        differs |= strcmp(a.trials[t].values[0], c.trials[t].values[0]) != 0;
    }
    assert_true(differs);
    sweep_free(&a);
    sweep_free(&b);
    sweep_free(&c);
}

static void test_sweep_random_draws_per_grid_point(void **state) {
    Sweep s;
    assert_true(parse(&s, "m.lathe --grid batch=64,128 --random 3 lr=uniform(0,1)") && sweep_plan(&s));
    assert_int_equal(s.ntrials, 6);
    for (int t = 0; t < 6; t++)
        assert_string_equal(s.trials[t].values[0], t < 3 ? "64" : "128");
    sweep_free(&s);
}

static void test_sweep_draws_stay_in_bounds(void **state) {
    SweepAxis uni = {.dist = SWEEP_UNIFORM, .lo = -2, .hi = 3}, lg = {.dist = SWEEP_LOG, .lo = 1e-4, .hi = 1e-1},
              in = {.dist = SWEEP_INT, .lo = 2, .hi = 5};
    char *choices[] = {"SGD(lr = 0.1)", "Adam()"};
    SweepAxis ch = {.dist = SWEEP_CHOICE, .values = choices, .nvalues = 2};
    uint64_t rng = 42;
    char buf[64];
    int below = 0, seen_int[8] = {0}, seen_choice[2] = {0};
    for (int i = 0; i < 2000; i++) {
        sweep_draw(&uni, &rng, buf, sizeof buf);
        double v = atof(buf);
        assert_true(v >= -2 && v <= 3);
        sweep_draw(&lg, &rng, buf, sizeof buf);
        v = atof(buf);
        assert_true(v >= 1e-4 && v <= 1e-1);
        assert_non_null(strpbrk(buf, ".e")); /* a real, never an integer literal */
        below += v < 1e-2 * 1.0000001; /* log-uniform: two of three decades lie below 1e-2 */
        sweep_draw(&in, &rng, buf, sizeof buf);
        int k = atoi(buf);
        assert_true(k >= 2 && k <= 5);
        assert_null(strchr(buf, '.'));
        seen_int[k]++;
        sweep_draw(&ch, &rng, buf, sizeof buf);
        seen_choice[strcmp(buf, choices[0]) == 0 ? 0 : 1]++;
        assert_true(strcmp(buf, choices[0]) == 0 || strcmp(buf, choices[1]) == 0);
    }
    assert_true(below > 1200 && below < 1450);
    for (int k = 2; k <= 5; k++)
        assert_true(seen_int[k] > 350);
    assert_true(seen_choice[0] > 850 && seen_choice[1] > 850);
}

static void test_sweep_bad_flags_one_message_each(void **state) {
    static const struct { const char *args, *says; } bad[] = {
        {"m.lathe --grid lr", "--grid takes KEY=V1,V2"},
        {"m.lathe --grid lr=1 --jobs 0", "--jobs"},
        {"m.lathe --grid lr=1,,2", "empty value"},
        {"m.lathe --random 3 lr=normal(0,1)", "expected uniform"},
        {"m.lathe --random 3 lr=log(0,1)", "positive"},
        {"m.lathe --random 3 lr=uniform(2,1)", "below"},
        {"m.lathe --random 3 lr=int(1.5,3)", "whole"},
        {"m.lathe --random 3 --seed 1", "needs KEY=DIST"},
        {"m.lathe --random 2 lr=int(1,2) --random 3 batch=int(1,3)", "same number"},
        {"m.lathe --grid lr=1 --grid lr=2", "swept twice"},
        {"m.lathe --grid 1x=2", "not a key"},
        {"m.lathe --grid lr=1 --mode up", "--mode"},
        {"m.lathe --grid lr=1 --seed -1", "--seed"},
        {"m.lathe --grid lr=1 --bogus", "unknown option"},
        {"m.lathe --grid lr=1 --jobs", "needs a value"},
        {"m.lathe --grid lr=1 -- --log-json x", "--log-json"},
        {"m.lathe n.lathe --grid lr=1", "unexpected argument"},
        {"--grid lr=1", "needs a model"},
        {"m.lathe", "nothing to sweep"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Sweep s;
        bool ok = parse(&s, bad[i].args);
        if (ok || !strstr(s.err, bad[i].says))
            fail_msg("'%s': %s, message '%s' (want '%s')", bad[i].args, ok ? "accepted" : "refused", s.err,
                     bad[i].says);
        assert_null(strchr(s.err, '\n'));
        sweep_free(&s);
    }
    Sweep s;
    assert_true(parse(&s, "m.lathe --grid a=1,2,3,4,5,6,7,8,9,10 --grid b=1,2,3,4,5,6,7,8,9,10 --grid "
                          "c=1,2,3,4,5,6,7,8,9,10 --grid d=1,2,3,4,5,6,7,8,9,10 --grid e=1,2"));
    assert_false(sweep_plan(&s)); /* 20000 trials */
    assert_non_null(strstr(s.err, "at most"));
    sweep_free(&s);
}

static void test_sweep_metric_modes(void **state) {
    assert_true(sweep_maximizes("test_accuracy"));
    assert_true(sweep_maximizes("val_f1"));
    assert_false(sweep_maximizes("val_loss"));
    assert_false(sweep_maximizes("train_loss"));
    assert_false(sweep_maximizes("test_mae"));
    assert_false(sweep_maximizes("val_mse"));
    assert_false(sweep_maximizes("seconds"));
}

/* A planned grid sweep of lr with hand-made results. */
static void results(Sweep *s, const char *const *json, const SweepState *states) {
    assert_true(parse(s, "m.lathe --grid lr=0.1,0.2,0.3,0.4,0.5"));
    assert_true(sweep_plan(s));
    for (int t = 0; t < 5; t++) {
        s->trials[t].state = states[t];
        s->trials[t].seconds = 1.5;
        if (json[t])
            s->trials[t].last_json = strdup(json[t]);
        if (states[t] == SWEEP_FAILED)
            s->trials[t].why = strdup("exit 2: bad \"value\", really");
    }
}

static void test_sweep_rank_best_first_failed_last(void **state) {
    const char *json[] = {"{\"train_loss\":1.0,\"test_accuracy\":0.5}", NULL,
                          "{\"train_loss\":0.5,\"test_accuracy\":0.8}", "{\"train_loss\":null,\"test_accuracy\":null}",
                          "{\"train_loss\":0.7,\"test_accuracy\":0.6}"};
    SweepState st[] = {SWEEP_OK, SWEEP_FAILED, SWEEP_OK, SWEEP_OK, SWEEP_OK};
    Sweep s;
    results(&s, json, st);
    sweep_score(&s);
    assert_string_equal(s.metric, "test_accuracy");
    assert_int_equal(s.maximize, 1);
    sweep_rank(&s);
    int want[] = {3, 5, 1, 4, 2};
    for (int t = 0; t < 5; t++)
        assert_int_equal(s.trials[t].id, want[t]);
    assert_true(s.trials[0].metric == 0.8);
    assert_true(isnan(s.trials[3].metric));
    sweep_free(&s);

    /* --metric train_loss: smaller first */
    results(&s, json, st);
    s.metric = "train_loss";
    sweep_score(&s);
    assert_int_equal(s.maximize, 0);
    sweep_rank(&s);
    int want_loss[] = {3, 5, 1, 4, 2};
    for (int t = 0; t < 5; t++)
        assert_int_equal(s.trials[t].id, want_loss[t]);
    sweep_free(&s);
}

static void test_sweep_default_metric_falls_back_and_missing_fails(void **state) {
    const char *json[] = {"{\"train_loss\":1.0,\"val_loss\":0.9}", "{\"train_loss\":0.5,\"val_loss\":0.4}",
                          "{\"train_loss\":0.7}", "{\"train_loss\":0.2,\"val_loss\":0.6}",
                          "{\"train_loss\":0.3,\"val_loss\":0.1}"};
    SweepState st[] = {SWEEP_OK, SWEEP_OK, SWEEP_OK, SWEEP_OK, SWEEP_OK};
    Sweep s;
    results(&s, json, st);
    sweep_score(&s);
    assert_string_equal(s.metric, "val_loss");
    assert_int_equal(s.maximize, 0);
    assert_int_equal(s.trials[2].state, SWEEP_FAILED); /* its log has no val_loss */
    assert_non_null(strstr(s.trials[2].why, "val_loss"));
    sweep_rank(&s);
    int want[] = {5, 2, 4, 1, 3};
    for (int t = 0; t < 5; t++)
        assert_int_equal(s.trials[t].id, want[t]);
    sweep_free(&s);
}

static void test_sweep_table_and_csv_have_the_same_rows(void **state) {
    const char *json[] = {"{\"train_loss\":1.0,\"test_accuracy\":0.5}", NULL,
                          "{\"train_loss\":0.5,\"test_accuracy\":0.75}", "{\"train_loss\":0.6,\"test_accuracy\":0.25}",
                          "{\"train_loss\":0.7,\"test_accuracy\":0.625}"};
    SweepState st[] = {SWEEP_OK, SWEEP_FAILED, SWEEP_OK, SWEEP_OK, SWEEP_NOT_RUN};
    Sweep s;
    results(&s, json, st);
    free(s.trials[2].values[0]);
    s.trials[2].values[0] = strdup("Adam(lr = 1, b = 2)");
    sweep_score(&s);
    sweep_rank(&s);
    char *table = NULL, *csv = NULL;
    size_t ntable, ncsv;
    FILE *f = open_memstream(&table, &ntable);
    sweep_print_table(f, &s);
    fclose(f);
    f = open_memstream(&csv, &ncsv);
    assert_true(sweep_write_csv(f, &s));
    fclose(f);
    const char *want_table = "rank  trial  lr                   test_accuracy  train_loss  seconds  status\n"
                             "1     3      Adam(lr = 1, b = 2)  0.75           0.5         1.50     ok\n"
                             "2     1      0.1                  0.5            1           1.50     ok\n"
                             "3     4      0.4                  0.25           0.6         1.50     ok\n"
                             "-     2      0.2                                             1.50     failed: exit 2: "
                             "bad \"value\", really\n"
                             "-     5      0.5                                             1.50     not run\n";
    const char *want_csv = "rank,trial,lr,test_accuracy,train_loss,seconds,status\r\n"
                           "1,3,\"Adam(lr = 1, b = 2)\",0.75,0.5,1.500,ok\r\n"
                           "2,1,0.1,0.5,1,1.500,ok\r\n"
                           "3,4,0.4,0.25,0.6,1.500,ok\r\n"
                           ",2,0.2,,,1.500,\"failed: exit 2: bad \"\"value\"\", really\"\r\n"
                           ",5,0.5,,,1.500,not run\r\n";
    assert_string_equal(table, want_table);
    assert_string_equal(csv, want_csv);
    free(table);
    free(csv);
    sweep_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep_split_at_top_level_commas),
        cmocka_unit_test(test_sweep_split_rejects_empty_and_unbalanced),
        cmocka_unit_test(test_sweep_grid_is_the_cross_product_last_axis_fastest),
        cmocka_unit_test(test_sweep_random_same_seed_same_trials),
        cmocka_unit_test(test_sweep_random_draws_per_grid_point),
        cmocka_unit_test(test_sweep_draws_stay_in_bounds),
        cmocka_unit_test(test_sweep_bad_flags_one_message_each),
        cmocka_unit_test(test_sweep_metric_modes),
        cmocka_unit_test(test_sweep_rank_best_first_failed_last),
        cmocka_unit_test(test_sweep_default_metric_falls_back_and_missing_fails),
        cmocka_unit_test(test_sweep_table_and_csv_have_the_same_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
