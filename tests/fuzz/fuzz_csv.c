/* fuzz_csv.c: CSV files (csv(file, ...)), read with a header and class labels by the last column, without a
   header as regression, and with ';' cells and categorical labels in the first column. */
#include "fuzz_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write("input.csv", data, size);
    RtDataSpec spec = {.present = true, .kind = RT_DATA_CSV, .images = "input.csv", .header = true,
                       .label_column = -1, .labels_kind = RT_LABELS_AUTO, .delimiter = ','};
    fuzz_load(&spec);
    spec.header = false, spec.regression = true, spec.labels_kind = RT_LABELS_NUMERIC;
    fuzz_load(&spec);
    spec.header = true, spec.regression = false, spec.labels_kind = RT_LABELS_CATEGORICAL;
    spec.delimiter = ';', spec.label_column = 0;
    fuzz_load(&spec);
    return 0;
}
