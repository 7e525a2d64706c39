# csv(...) as the issue lists it: an iris-like CSV with a header, string class labels in the middle, a text
# column to skip and a quoted cell holding the delimiter; the features chosen by header name and index, the
# label by name. A small MLP trains on it, its test accuracy must beat chance by far, and predict must print a
# class name. Then a semicolon-delimited copy, and bad files and recipe values, each one message.
source "$(dirname "$0")/common.bash"

mkdir irisdata semi bad
python3 - <<'PY'
import random
random.seed(7)
means = {"setosa": (5.0, 3.4, 1.5, 0.2), "versicolor": (5.9, 2.8, 4.3, 1.3), "virginica": (6.6, 3.0, 5.6, 2.0)}
def rows(n, seed):
    r = random.Random(seed)
    out = []
    for i in range(n):
        name = sorted(means)[i % 3]
        m = means[name]
        f = [round(v + r.gauss(0, 0.25), 2) for v in m]
        out.append((f, name, i))
    return out
def write(path, n, seed, delim):
    with open(path, "w") as fh:
        fh.write(delim.join(["id", "sepal_length", "sepal_width", "species", "petal_length", "petal_width", "note"]) + "\n")
        for f, name, i in rows(n, seed):
            note = '"picked by hand, %s ""%d"""' % (name, i)           # quoted: holds the delimiter and quotes
            fh.write(delim.join(["s%03d" % i, str(f[0]), str(f[1]), name, str(f[2]), str(f[3]), note]) + "\n")
write("irisdata/train.csv", 150, 1, ",")
write("irisdata/test.csv", 60, 2, ",")
write("semi/train.csv", 150, 1, ";")
write("semi/test.csv", 60, 2, ";")
PY

cat >iris.lathe <<'LATHE'
model Iris {
    net = Sequential(Linear(4, 16), ReLU(), Linear(16, 3))
    forward(x: f32[N, 4]) -> f32[N, 3] {
        return net(x)
    }
}
train Iris {
    data      = csv("train.csv", features = ["sepal_length", "sepal_width", -3, "petal_width"],
                    label_column = "species")
    test      = csv("test.csv", features = ["sepal_length", "sepal_width", -3, "petal_width"],
                    label_column = "species")
    batch     = 10
    epochs    = 1
    loss      = cross_entropy(logits, label)
    optimizer = SGD(lr = 0.1)
    metrics   = [accuracy]
}
LATHE
"$LATHE" compile iris.lathe -o iris 2>iris.err || { cat iris.err; fail "compile iris"; }
./iris train --data irisdata --epochs 30 --checkpoint-dir ck --log-json iris.jsonl >iris.out 2>&1 \
  || { cat iris.out; fail "train on iris.csv"; }
grep -q '^Done!' iris.out || { cat iris.out; fail "iris: no Done!"; }
acc=$(json_get iris.jsonl test_accuracy)
python3 -c "import sys; sys.exit(0 if $acc > 0.8 else 1)" || fail "iris: test accuracy $acc (chance is 0.33)"
./iris predict --weights ck/last.safetensors --data irisdata --index 1 >pred.out 2>&1 || { cat pred.out; fail "predict"; }
grep -q -E '^Predicted: "(setosa|versicolor|virginica)", Actual: "versicolor"$' pred.out \
  || { cat pred.out; fail "predict does not print the class names"; }

# the same file with ';' between cells: the compiled default changes with --set
./iris train --data semi --epochs 30 --log-json semi.jsonl \
  --set 'data=csv("train.csv", features = [1, 2, 4, 5], label_column = 3, delimiter = ";")' \
  --set 'test=csv("test.csv", features = [1, 2, 4, 5], label_column = 3, delimiter = ";")' >semi.out 2>&1 \
  || { cat semi.out; fail "train on semicolon csv"; }
acc=$(json_get semi.jsonl test_accuracy)
python3 -c "import sys; sys.exit(0 if $acc > 0.8 else 1)" || fail "semicolon csv: test accuracy $acc"

# ---------------------------------------------------------------- bad files and values
head -5 irisdata/train.csv >bad/train.csv
cp irisdata/test.csv bad/test.csv
echo 's999,5.0,three,setosa,1.4,0.2,x' >>bad/train.csv
expect_fail ./iris train --data bad --epochs 1
expect_msg "train\.csv:6: column 3: 'three' is not a number \(feature column 'sepal_width'\)"
head -5 irisdata/train.csv >bad/train.csv
echo 's999,5.0,3.0,7,1.4,0.2,x' >>bad/train.csv
expect_fail ./iris train --data bad --epochs 1
expect_msg "train\.csv:6: column 4: the label '7' is a number, but the label 'setosa' on line 2 is not"
expect_fail ./iris train --data irisdata --epochs 1 --set 'data=csv("train.csv", features = ["petal_widht"])'
expect_msg "train\.csv: csv\(\.\.\., features\): the header has no column 'petal_widht' \(did you mean 'petal_width'\?\)"
cat >bad.lathe <<'LATHE'
model Iris {
    net = Linear(4, 3)
    forward(x: f32[N, 4]) -> f32[N, 3] {
        return net(x)
    }
}
train Iris {
    data      = csv("train.csv", features = [0, 1, 2], labels = "categorical")
    loss      = cross_entropy(logits, label)
    optimizer = SGD(lr = 0.1)
}
LATHE
expect_fail "$LATHE" compile bad.lathe -o bad
expect_msg "csv gives 'x' as f32\[N,3\] \(one value a column of features\), but forward takes f32\[N,4\]"
echo "OK"
