/*
 * test_stats.c — the observability formats: access-log lines, histogram
 * buckets and quantiles, checking a stats file before trusting it, and the
 * Prometheus text rendered from one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "observe/accesslog.h"
#include "meshim/stats.h"
#include "meshim/util.h"
#include "sharedview.h"
#include "statsview.h"

/* ------------------------------------------------------------ access log -- */

static void test_access_line(void **state)
{
    (void)state;
    struct access_record r = {
        .start_unix_ns = 1795435200123456789ull,    /* 2026-11-23T12:00:00.123Z */
        .pid = 42, .direction = DIRECTION_OUTBOUND, .service = "orders",
        .endpoint = "10.0.0.5:8080", .attempts = 3, .result = "refused",
        .flags = FLAG_UF | FLAG_URX, .peer_identity = "", .connect_ms = -1,
        .duration_ms = 51.25, .bytes_sent = 0, .bytes_received = 0,
    };
    char buf[ACCESS_LINE_MAX + 1];
    size_t n = access_format(&r, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf,
        "{\"ts\":\"2026-11-23T12:00:00.123Z\",\"pid\":42,\"direction\":\"outbound\","
        "\"service\":\"orders\",\"endpoint\":\"10.0.0.5:8080\",\"attempts\":3,"
        "\"result\":\"refused\",\"flags\":\"UF,URX\",\"tls\":\"none\",\"peer_identity\":\"\","
        "\"connect_ms\":null,\"duration_ms\":51.250,\"bytes_sent\":0,\"bytes_received\":0}\n");
}

/* A retried connection names each failed attempt: where, and why. */
static void test_access_failed_attempts(void **state)
{
    (void)state;
    struct access_failure f[2] = {
        { "10.0.0.5:8080", "Connection refused" },
        { "10.0.0.6:8080", "TLS handshake: certificate \"expired\"" },
    };
    struct access_record r = {
        .service = "orders", .endpoint = "10.0.0.7:8080", .attempts = 3, .result = "ok",
        .peer_identity = "", .connect_ms = 2, .failures = f, .n_failures = 2,
    };
    char buf[ACCESS_LINE_MAX + 1];
    access_format(&r, buf, sizeof(buf));
    assert_non_null(strstr(buf, ",\"bytes_received\":0,\"failed_attempts\":["
                                "{\"endpoint\":\"10.0.0.5:8080\",\"error\":\"Connection refused\"},"
                                "{\"endpoint\":\"10.0.0.6:8080\",\"error\":"
                                "\"TLS handshake: certificate \\\"expired\\\"\"}]}\n"));
    r.n_failures = 0;
    access_format(&r, buf, sizeof(buf));
    assert_null(strstr(buf, "failed_attempts"));
}

static void test_access_escaping_and_callers(void **state)
{
    (void)state;
    struct access_record r = {
        .service = "we\"ird\\na\nme", .endpoint = "", .result = "ok", .peer_identity = "",
        .tls = "relay", .tls_relay_why = "the peer is not meshim", .connect_ms = 1.5, .callers = "[\"main+0x1 (prog)\"]",
    };
    char buf[ACCESS_LINE_MAX + 1];
    access_format(&r, buf, sizeof(buf));
    assert_non_null(strstr(buf, "\"service\":\"we\\\"ird\\\\na\\u000ame\""));
    assert_non_null(strstr(buf, "\"tls\":\"relay\",\"tls_relay_why\":\"the peer is not meshim\""));
    assert_non_null(strstr(buf, "\"flags\":\"-\""));
    assert_non_null(strstr(buf, ",\"callers\":[\"main+0x1 (prog)\"]}\n"));

    /* A stack too long for the line: the line stays whole JSON. */
    char *big = malloc(ACCESS_LINE_MAX * 2);
    memset(big, 'x', ACCESS_LINE_MAX * 2 - 3);
    big[0] = '[', big[1] = '"';
    strcpy(big + ACCESS_LINE_MAX * 2 - 4, "\"]");
    r.callers = big;
    size_t n = access_format(&r, buf, sizeof(buf));
    assert_true(n <= ACCESS_LINE_MAX);
    assert_non_null(strstr(buf, ",\"callers\":[\"(too long)\"]}\n"));
    free(big);
}

static void test_flags_text(void **state)
{
    (void)state;
    char buf[64];
    access_flags_text(0, buf, sizeof(buf));
    assert_string_equal(buf, "-");
    access_flags_text(FLAG_UO, buf, sizeof(buf));
    assert_string_equal(buf, "UO");
    access_flags_text(FLAG_UH | FLAG_FI | FLAG_DENY, buf, sizeof(buf));
    assert_string_equal(buf, "UH,FI,DENY");
}

/* ------------------------------------------------------------ histograms -- */

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(stats_bucket_of(0), 0);
    assert_int_equal(stats_bucket_of(100), 0);          /* upper bounds are inclusive */
    assert_int_equal(stats_bucket_of(101), 1);
    assert_int_equal(stats_bucket_of(1000), 3);
    assert_int_equal(stats_bucket_of(5000000), STATS_BUCKETS - 2);
    assert_int_equal(stats_bucket_of(5000001), STATS_BUCKETS - 1);
    assert_int_equal(stats_bucket_of(UINT64_MAX), STATS_BUCKETS - 1);
}

static void test_quantiles(void **state)
{
    (void)state;
    struct stats_histogram h = { 0 };
    assert_true(stats_quantile_us(&h, 0.5) < 0);       /* nothing observed */
    /* 100 observations in (250, 500] µs: quantiles interpolate inside it. */
    h.buckets[2] = 100;
    assert_true(stats_quantile_us(&h, 0.5) > 374 && stats_quantile_us(&h, 0.5) < 376);
    assert_true(stats_quantile_us(&h, 0.99) > 497 && stats_quantile_us(&h, 0.99) <= 500);
    /* One slow outlier in +Inf does not move p50; p99 of 2 % in +Inf is
     * reported as the highest finite bound. */
    h.buckets[STATS_BUCKETS - 1] = 3;
    assert_true(stats_quantile_us(&h, 0.5) < 500);
    assert_true(stats_quantile_us(&h, 0.99) == 5000000);
}

/* ------------------------------------------------------------ stats files -- */

/* A stats file as the library lays it out, in a temporary folder. */
static struct stats_header *make_file(const char *path)
{
    size_t size = stats_file_size();
    struct stats_header *h = calloc(1, size);
    memcpy(h->magic, STATS_MAGIC, 8);
    h->version = STATS_VERSION;
    h->header_size = sizeof(*h);
    h->file_size = size;
    h->pid = 4242;
    h->max_services = STATS_MAX_SERVICES;
    h->max_endpoints = STATS_MAX_ENDPOINTS;
    h->max_inbound = STATS_MAX_INBOUND;
    strcpy(h->process, "my\"app");
    h->off_services = sizeof(*h);
    h->off_endpoints = h->off_services + STATS_MAX_SERVICES * sizeof(struct stats_service);
    h->off_inbound = h->off_endpoints + STATS_MAX_ENDPOINTS * sizeof(struct stats_endpoint);
    h->off_requests = h->off_inbound + STATS_MAX_INBOUND * sizeof(struct stats_inbound);
    struct stats_service *svc = (void *)((char *)h + h->off_services);
    struct stats_endpoint *ep = (void *)((char *)h + h->off_endpoints);
    strcpy(svc[0].name, "orders");
    svc[0].retries = 3;
    svc[0].active = -2;                         /* a fork child's inherited close */
    svc[0].connections[RESULT_OVERFLOW] = 7;
    svc[0].connect.buckets[0] = 2;
    svc[0].connect.buckets[4] = 1;
    svc[0].connect.sum_us = 1234;
    strcpy(ep[0].label, "10.0.0.5:8080");
    ep[0].connections[RESULT_OK] = 40;
    ep[0].connections[RESULT_TIMEOUT] = 2;
    strcpy(ep[1].label, "10.0.0.6:8080");
    ep[1].ejected = 1;
    ep[1].ejections = 1;
    ep[1].service = 0;
    /* protocol = http: two request series, one answered by the mesh. */
    struct stats_requests *rq = (void *)((char *)h + h->off_requests);
    rq[0] = (struct stats_requests){ .service = 0, .endpoint = 0, .method = "GET", .code = 2, .count = 9 };
    rq[1] = (struct stats_requests){ .service = 0, .endpoint = STATS_NO_ENDPOINT, .method = "POST",
                                     .code = 503, .count = 1 };
    rq[2] = (struct stats_requests){ .service = 0, .endpoint = 7, .method = "GET", .code = 2, .count = 5 };
    svc[0].request.buckets[2] = 10;
    svc[0].request.count = 10;
    svc[0].request.sum_us = 3000;
    h->n_requests = 3;
    h->n_services = 1;
    h->n_endpoints = 2;
    FILE *f = fopen(path, "w");
    fwrite(h, 1, size, f);
    fclose(f);
    return h;
}

static char *render(const struct stats_view *v)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    stats_render_prometheus(v, 1, f);
    fclose(f);
    return text;
}

static void test_prometheus_text(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshim-unit.XXXXXX", path[256], why[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/4242.stats", dir);
    free(make_file(path));
    struct stats_view v;
    assert_true(stats_view_open(path, &v, why, sizeof(why)));
    char *text = render(&v);
    const char *want[] = {
        "# TYPE meshim_connections_total counter\n",
        "meshim_connections_total{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"10.0.0.5:8080\",result=\"ok\"} 40\n",
        "meshim_connections_total{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"10.0.0.5:8080\",result=\"timeout\"} 2\n",
        "meshim_connections_total{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"\",result=\"overflow\"} 7\n",
        "meshim_retries_total{process=\"my?app\",pid=\"4242\",service=\"orders\"} 3\n",
        "meshim_endpoint_ejected{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"10.0.0.6:8080\"} 1\n",
        "meshim_active_connections{process=\"my?app\",pid=\"4242\",service=\"orders\"} 0\n",
        "meshim_connect_seconds_bucket{process=\"my?app\",pid=\"4242\",service=\"orders\",le=\"0.0001\"} 2\n",
        "meshim_connect_seconds_bucket{process=\"my?app\",pid=\"4242\",service=\"orders\",le=\"0.001\"} 2\n",
        "meshim_connect_seconds_bucket{process=\"my?app\",pid=\"4242\",service=\"orders\",le=\"0.0025\"} 3\n",
        "meshim_connect_seconds_bucket{process=\"my?app\",pid=\"4242\",service=\"orders\",le=\"+Inf\"} 3\n",
        "meshim_connect_seconds_sum{process=\"my?app\",pid=\"4242\",service=\"orders\"} 0.001234\n",
        "meshim_connect_seconds_count{process=\"my?app\",pid=\"4242\",service=\"orders\"} 3\n",
        "meshim_requests_total{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"10.0.0.5:8080\",method=\"GET\",code=\"2xx\"} 9\n",
        "meshim_requests_total{process=\"my?app\",pid=\"4242\",service=\"orders\",endpoint=\"\",method=\"POST\",code=\"503\"} 1\n",
        "meshim_request_duration_seconds_bucket{process=\"my?app\",pid=\"4242\",service=\"orders\",le=\"0.0005\"} 10\n",
        "meshim_request_duration_seconds_count{process=\"my?app\",pid=\"4242\",service=\"orders\"} 10\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(text, want[i]))
            fail_msg("missing: %s\nin:\n%s", want[i], text);
    /* A series naming an endpoint slot the file does not have is skipped. */
    assert_null(strstr(text, "} 5\n"));
    /* Zero outcomes other than ok are left out. */
    assert_null(strstr(text, "result=\"refused\""));
    free(text);
    stats_view_close(&v);

    /* A file of a process that does not exist is removed by a scan. */
    struct stats_view *views;
    assert_int_equal(stats_view_scan(dir, 0, &views), 0);
    free(views);
    assert_int_equal(access(path, F_OK), -1);
    rmdir(dir);
}

static void test_untrusted_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshim-unit.XXXXXX", path[256], why[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/1.stats", dir);
    struct stats_view v;

    struct stats_header *h = make_file(path);
    h->version = 99;
    FILE *f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "written by another version of meshim");

    h->version = STATS_VERSION;
    h->off_inbound = stats_file_size() - 8;     /* points past the end */
    f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "corrupt layout");

    f = fopen(path, "w");
    fwrite(h, 1, 100, f);
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "truncated");

    /* Counts beyond the slots, and limits or sizes other than this
     * version's, are refused: a file cannot make a reader allocate more
     * (review finding 4: a sparse file declaring 1.8 M slots). */
    h->off_inbound = STATS_OFF_INBOUND;
    h->n_services = 100000;
    f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "corrupt layout");
    h->n_services = 1;
    h->max_endpoints = 1u << 30;
    f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "corrupt layout");
    h->max_endpoints = STATS_MAX_ENDPOINTS;
    h->file_size = 512u << 20;
    f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    assert_int_equal(ftruncate(fileno(f), 512 << 20), 0);     /* sparse */
    fclose(f);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "not the size of a stats file");
    h->file_size = stats_file_size();

    /* Names without a terminator are bounded. The view is a copy: the
     * file shrinking or changing afterwards cannot reach it (a live map
     * gave SIGBUS and reads out of bounds: review finding 3). */
    h->n_services = STATS_MAX_SERVICES;
    struct stats_service *svc = (void *)((char *)h + h->off_services);
    memset(svc[0].name, 'a', sizeof(svc[0].name));
    f = fopen(path, "w");
    fwrite(h, 1, stats_file_size(), f);
    fclose(f);
    assert_true(stats_view_open(path, &v, why, sizeof(why)));
    assert_int_equal(stats_view_count(&v, 's'), STATS_MAX_SERVICES);
    assert_int_equal(truncate(path, 0), 0);
    char *text = render(&v);
    assert_non_null(text);
    assert_non_null(strstr(text, "service=\"aaaa"));
    free(text);
    stats_view_close(&v);

    /* A FIFO with a stats file's name is skipped without blocking (an open
     * of it waited for a writer for ever: review finding 2). */
    unlink(path);
    snprintf(path, sizeof(path), "%s/%d.stats", dir, (int)getpid());
    assert_int_equal(mkfifo(path, 0600), 0);
    assert_false(stats_view_open(path, &v, why, sizeof(why)));
    assert_string_equal(why, "not a regular file");
    struct stats_view *views;
    assert_int_equal(stats_view_scan(dir, 0, &views), 0);
    free(views);
    unlink(path);

    /* A file for a live process (ours) whose owner is none of that
     * process's users is not read: no forged counters for another user's
     * pid (review finding 3). Needs root to give the file away. */
    if (geteuid() == 0) {
        h->pid = (int32_t)getpid();
        h->start_ticks = proc_start_ticks(0);
        h->n_services = 1;
        f = fopen(path, "w");
        fwrite(h, 1, stats_file_size(), f);
        fclose(f);
        assert_int_equal(stats_view_scan(dir, 0, &views), 1);
        stats_view_free(views, 1);
        assert_int_equal(chown(path, 65534, 65534), 0);
        assert_int_equal(stats_view_scan(dir, 0, &views), 0);
        free(views);
        unlink(path);
    }
    free(h);
    unlink(path);
    rmdir(dir);
}

/* `meshim stats`' host table lists the entries in use and counts the idle
 * ones (a long-lived table holds every endpoint its user's programs ever
 * met); --all lists them too. */
static void test_host_table_hides_idle(void **state)
{
    (void)state;
    uint64_t now = now_ns() / 1000000u;
    /* Right after boot no stamp of this clock is old enough: one of another
     * clock (far ahead) is idle as well. */
    uint64_t old = now > SHARED_IDLE_MS + 1000 ? now - SHARED_IDLE_MS - 1000 : now + 2 * SHARED_IDLE_MS;
    struct shared_entry entries[3] = { 0 };
    const char *names[3][2] = { { "orders", "10.0.0.5:8080" }, { "orders", "10.0.0.6:8080" },
                                { "pods", "10.1.2.3:80" } };
    for (int i = 0; i < 3; i++) {
        entries[i].key = 100 + i;
        snprintf(entries[i].service, sizeof(entries[i].service), "%s", names[i][0]);
        snprintf(entries[i].endpoint, sizeof(entries[i].endpoint), "%s", names[i][1]);
        entries[i].used_ms = i == 0 ? now : old;
    }
    /* The second one is ejected still: shown, however long unused. */
    struct circuit open = { .state = CIRCUIT_OPEN, .ejections = 1,
                            .open_until_ns = (now + 60000) * 1000000ull };
    entries[1].circuit = shared_circuit_pack(&open);
    struct shared_view v = { .entries = entries, .n = 3, .path = "/tmp/meshim-0/shared-endpoints.v1" };
    for (int all = 0; all < 2; all++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        shared_render_table(&v, all, f);
        fclose(f);
        assert_non_null(strstr(text, "orders 10.0.0.5:8080"));
        assert_non_null(strstr(text, "orders 10.0.0.6:8080"));
        assert_non_null(strstr(text, "ejected"));
        if (all) {
            assert_non_null(strstr(text, "pods 10.1.2.3:80"));
            assert_null(strstr(text, "more unused"));
        } else {
            assert_null(strstr(text, "pods"));
            assert_non_null(strstr(text, "(1 more unused for 10 minutes, with no verdict in force: "
                                         "--all lists them)"));
        }
        free(text);
    }
}

/* The folder's names: a file per process, one being made, anything else. */
static void test_stats_file_names(void **state)
{
    (void)state;
    bool making;
    assert_int_equal(stats_file_pid("1234.stats", &making), 1234);
    assert_false(making);
    assert_int_equal(stats_file_pid(".1234.stats.Ab3xYz", &making), 1234);
    assert_true(making);
    const char *others[] = { "shared-endpoints.v1", "tls-module-0f83fa4487985103.so", "1234.stats.old",
                             ".1234.stats", "0.stats", "-5.stats", "+5.stats", " 5.stats", ".stats",
                             "1234", "99999999999.stats", "12a.stats", "." , ".." };
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_int_equal(stats_file_pid(others[i], &making), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_access_line),
        cmocka_unit_test(test_access_failed_attempts),
        cmocka_unit_test(test_access_escaping_and_callers),
        cmocka_unit_test(test_flags_text),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_prometheus_text),
        cmocka_unit_test(test_untrusted_files),
        cmocka_unit_test(test_stats_file_names),
        cmocka_unit_test(test_host_table_hides_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
