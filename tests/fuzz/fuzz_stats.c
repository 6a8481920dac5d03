/*
 * fuzz_stats.c — libFuzzer: the command's stats-file reader. The input is
 * the start of a file of exactly a stats file's size (the rest zeros), as
 * any local user can write one; it is opened, copied, checked and rendered
 * as a table and as Prometheus text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "statsview.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], why[128];
    snprintf(path, sizeof(path), "/tmp/meshim-fuzz-%d.stats", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        return 0;
    size_t want = stats_file_size();
    fwrite(data, 1, size < want ? size : want, f);
    if (size < want && ftruncate(fileno(f), (off_t)want) != 0) {
        fclose(f);
        return 0;
    }
    fclose(f);
    struct stats_view v;
    if (stats_view_open(path, &v, why, sizeof(why))) {
        FILE *out = fopen("/dev/null", "w");
        if (out) {
            stats_render_table(&v, out);
            stats_render_prometheus(&v, 1, out);
            fclose(out);
        }
        stats_view_close(&v);
    }
    unlink(path);
    return 0;
}
