/*
 * test_discovery.c — DNS answers read into records, TTL clamping, SRV
 * records into weighted, prioritised endpoints, and the endpoints-file
 * parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshim/config.h"
#include "meshim/discovery.h"
#include "dnsmsg.h"

/* ------------------------------------------------- building an answer -- */

/* The question's name, by a compression pointer to offset 12. */
static void put_qname_ptr(struct msg *m)
{
    put16(m, 0xc00c);
}

static void header(struct msg *m, unsigned an, unsigned ns, unsigned ar, const char *qname,
                   unsigned qtype)
{
    memset(m, 0, sizeof(*m));
    put16(m, 0x1234);
    put16(m, 0x8180);       /* response, recursion available, no error */
    put16(m, 1);
    put16(m, an);
    put16(m, ns);
    put16(m, ar);
    put_name(m, qname);
    put16(m, qtype);
    put16(m, ns_c_in);
}

static void rr_a(struct msg *m, const char *owner, uint32_t ttl, const char *ip)
{
    if (owner)
        put_name(m, owner);
    else
        put_qname_ptr(m);
    put16(m, ns_t_a);
    put16(m, ns_c_in);
    put32(m, ttl);
    put16(m, 4);
    inet_pton(AF_INET, ip, m->b + m->n);
    m->n += 4;
}

static void rr_aaaa(struct msg *m, uint32_t ttl, const char *ip)
{
    put_qname_ptr(m);
    put16(m, ns_t_aaaa);
    put16(m, ns_c_in);
    put32(m, ttl);
    put16(m, 16);
    inet_pton(AF_INET6, ip, m->b + m->n);
    m->n += 16;
}

static void rr_srv(struct msg *m, uint32_t ttl, unsigned prio, unsigned weight, unsigned port,
                   const char *target)
{
    put_qname_ptr(m);
    put16(m, ns_t_srv);
    put16(m, ns_c_in);
    put32(m, ttl);
    size_t len_at = m->n;
    put16(m, 0);
    size_t start = m->n;
    put16(m, prio);
    put16(m, weight);
    put16(m, port);
    put_name(m, target);
    m->b[len_at] = (unsigned char)((m->n - start) >> 8);
    m->b[len_at + 1] = (unsigned char)(m->n - start);
}

static void rr_cname(struct msg *m, const char *to)
{
    put_qname_ptr(m);
    put16(m, ns_t_cname);
    put16(m, ns_c_in);
    put32(m, 60);
    size_t len_at = m->n;
    put16(m, 0);
    size_t start = m->n;
    put_name(m, to);
    m->b[len_at + 1] = (unsigned char)(m->n - start);
}

/* ------------------------------------------------------------- dns_parse -- */

static void test_parse_a_aaaa(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 4, 0, 0, "Orders.Service.Consul", ns_t_a);
    rr_cname(&m, "real.service.consul");                /* skipped */
    rr_a(&m, NULL, 30, "127.0.0.2");
    rr_a(&m, NULL, 5, "127.0.0.3");
    rr_aaaa(&m, 60, "::1");
    struct dns_record r[8];
    int n = dns_parse(m.b, (int)m.n, r, 8);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].type, ns_t_a);
    assert_string_equal(r[0].owner, "orders.service.consul");   /* lower case */
    assert_int_equal(r[0].section, DNS_ANSWER);
    assert_int_equal(r[0].ttl, 30);
    assert_int_equal(r[0].addr.family, AF_INET);
    assert_int_equal(r[1].addr.ip.v4.s_addr, inet_addr("127.0.0.3"));
    assert_int_equal(r[2].type, ns_t_aaaa);
    assert_int_equal(r[2].addr.family, AF_INET6);
    assert_true(IN6_IS_ADDR_LOOPBACK(&r[2].addr.ip.v6));
    /* cap: only as many as fit, no overflow */
    assert_int_equal(dns_parse(m.b, (int)m.n, r, 1), 1);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 2, 0, 0, "orders", ns_t_a);
    rr_a(&m, NULL, 30, "127.0.0.2");
    rr_a(&m, NULL, 30, "127.0.0.3");
    struct dns_record r[4];
    for (size_t cut = 0; cut < m.n; cut++)
        assert_int_equal(dns_parse(m.b, (int)cut, r, 4), -1);
    /* A compression pointer that loops on itself. */
    header(&m, 1, 0, 0, "orders", ns_t_a);
    size_t at = m.n;
    put16(&m, 0xc000 | (unsigned)at);
    put16(&m, ns_t_a);
    assert_int_equal(dns_parse(m.b, (int)m.n, r, 4), -1);
    /* More records announced than present. */
    header(&m, 3, 0, 0, "orders", ns_t_a);
    rr_a(&m, NULL, 30, "127.0.0.2");
    assert_int_equal(dns_parse(m.b, (int)m.n, r, 4), -1);
}

/* SRV with addresses in the additional section (Consul sends them). */
static void test_srv_endpoints(void **state)
{
    (void)state;
    struct msg m;
    header(&m, 4, 0, 3, "_http._tcp.orders.service.consul", ns_t_srv);
    rr_srv(&m, 20, 10, 60, 8080, "a.node.consul");
    rr_srv(&m, 20, 10, 20, 8081, "B.node.consul");
    rr_srv(&m, 20, 20, 0, 9090, "backup.node.consul");
    rr_srv(&m, 20, 10, 5, 8082, "nowhere.node.consul");  /* no address: left out */
    rr_a(&m, "a.node.consul", 20, "127.0.0.2");
    rr_a(&m, "b.node.consul", 20, "127.0.0.3");
    rr_a(&m, "backup.node.consul", 20, "127.0.0.4");
    struct dns_record r[16];
    int n = dns_parse(m.b, (int)m.n, r, 16);
    assert_int_equal(n, 7);
    assert_int_equal(r[1].type, ns_t_srv);
    assert_string_equal(r[1].target, "b.node.consul");
    assert_int_equal(r[4].section, DNS_ADDITIONAL);
    struct endpoint_spec e[8];
    size_t k = discovery_srv_endpoints(r, (size_t)n, e, 8);
    assert_int_equal(k, 3);
    assert_int_equal(e[0].addr.ip.v4.s_addr, inet_addr("127.0.0.2"));
    assert_int_equal(e[0].addr.port, 8080);
    assert_int_equal(e[0].priority, 10);
    assert_int_equal(e[0].weight, discovery_srv_weight(60));
    assert_int_equal(e[1].addr.port, 8081);
    assert_int_equal(e[2].addr.ip.v4.s_addr, inet_addr("127.0.0.4"));
    assert_int_equal(e[2].priority, 20);
    assert_int_equal(e[2].weight, 1);                   /* SRV weight 0 */
    /* cap */
    assert_int_equal(discovery_srv_endpoints(r, (size_t)n, e, 2), 2);
}

static void test_srv_weights(void **state)
{
    (void)state;
    /* Proportional; 0 is a very small share beside any other weight. */
    assert_int_equal(discovery_srv_weight(60) * 1, discovery_srv_weight(20) * 3);
    assert_true(discovery_srv_weight(0) * 100 <= discovery_srv_weight(1));
    assert_true(discovery_srv_weight(0) > 0);
    assert_int_equal(discovery_srv_weight(65535), 6553500u);
}

static void test_ttl_clamp(void **state)
{
    (void)state;
    assert_int_equal(discovery_ttl_s(0), 1);
    assert_int_equal(discovery_ttl_s(1), 1);
    assert_int_equal(discovery_ttl_s(30), 30);
    assert_int_equal(discovery_ttl_s(300), 300);
    assert_int_equal(discovery_ttl_s(301), 300);
    assert_int_equal(discovery_ttl_s(UINT32_MAX), 300);
}

/* --------------------------------------------------------- endpoints file -- */

static void test_endpoints_file(void **state)
{
    (void)state;
    struct endpoint_list l;
    char err[256];
    const char *good = "# orders, written by the agent\n"
                       "\n"
                       "127.0.0.2:8080\n"
                       "  127.0.0.3:8080 weight=3   # the big one\n"
                       "[::1]:8081\n"
                       "127.0.0.4";
    assert_true(config_parse_endpoints("/etc/x", good, &l, err, sizeof(err)));
    assert_int_equal(l.n, 4);
    assert_int_equal(l.v[0].addr.port, 8080);
    assert_int_equal(l.v[0].weight, 1);
    assert_int_equal(l.v[1].weight, 3);
    assert_int_equal(l.v[1].addr.ip.v4.s_addr, inet_addr("127.0.0.3"));
    assert_int_equal(l.v[2].addr.family, AF_INET6);
    assert_int_equal(l.v[3].addr.port, 0);              /* the application's port */
    free(l.v);

    assert_true(config_parse_endpoints("/etc/x", "# nothing yet\n", &l, err, sizeof(err)));
    assert_int_equal(l.n, 0);
    free(l.v);

    static const struct { const char *text, *msg; } BAD[] = {
        { "127.0.0.2:8080\norders.local:80\n", "/etc/x:2: endpoints_file: not IP[:PORT] "
          "[weight=1..1000]: \"orders.local:80\"" },
        { "\n\n127.0.0.2 weight=0\n", "/etc/x:3: endpoints_file: not IP[:PORT] [weight=1..1000]: "
          "\"127.0.0.2 weight=0\"" },
        { "127.0.0.2 weight=1001", "/etc/x:1: endpoints_file: not IP[:PORT] [weight=1..1000]: "
          "\"127.0.0.2 weight=1001\"" },
        { "127.0.0.2:99999", "/etc/x:1: endpoints_file: not IP[:PORT] [weight=1..1000]: "
          "\"127.0.0.2:99999\"" },
        { "127.0.0.2, 127.0.0.3", "/etc/x:1: endpoints_file: not IP[:PORT] [weight=1..1000]: "
          "\"127.0.0.2, 127.0.0.3\"" },
        { "[fe80::1]:80", "/etc/x:1: endpoints_file: a link-local address (fe80::/10) cannot be an "
          "endpoint: it needs an interface, which meshim does not take: \"[fe80::1]:80\"" },
    };
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        assert_false(config_parse_endpoints("/etc/x", BAD[i].text, &l, err, sizeof(err)));
        assert_string_equal(err, BAD[i].msg);
    }
    assert_false(config_read_endpoints("/nonexistent/meshim-endpoints", &l, err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/meshim-endpoints: endpoints_file: cannot read: "
                             "No such file or directory");
}

/* A file in a temporary folder, with text of n bytes. */
static void write_file(char *path, size_t size, const char *text, size_t n)
{
    snprintf(path, size, "/tmp/meshim-eps-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
}

/* Is a block of size bytes served by a mapping of its own, as glibc does
 * above its mmap threshold? The threshold starts at 128 KiB and rises to
 * the size of each mapped block freed (this probe's too), so each probe
 * asks for more than the one before. */
static bool mapped_block(size_t size)
{
#if defined(__SANITIZE_ADDRESS__)
    (void)size;
    return true;                        /* ASan's allocator has no thresholds */
#else
    size_t before = mallinfo2().hblks;
    void *p = malloc(size);
    bool mapped = p && mallinfo2().hblks == before + 1;
    free(p);
    return mapped;
#endif
}

/* The file as the shim reads it: whole, as text; and without touching the
 * program's malloc (it allocated 16 MiB for every read, and glibc, when
 * it was freed, raised the process's mmap threshold to 16 MiB: the
 * program's own blocks up to that size moved onto the heap). */
static void test_endpoints_file_read(void **state)
{
    (void)state;
    char path[64], err[512];
    struct endpoint_list l;
    assert_true(mapped_block(1 << 20));
    static const char TEXT[] = "# two\n127.0.0.2:8080\n127.0.0.3 weight=5\n";
    write_file(path, sizeof(path), TEXT, sizeof(TEXT) - 1);
    assert_true(config_read_endpoints(path, &l, err, sizeof(err)));
    assert_int_equal(l.n, 2);
    assert_int_equal(l.v[1].weight, 5);
    free(l.v);
    assert_true(mapped_block(2 << 20));  /* the read freed no block above 1 MiB */
    unlink(path);

    write_file(path, sizeof(path), "", 0);
    assert_true(config_read_endpoints(path, &l, err, sizeof(err)));
    assert_int_equal(l.n, 0);
    free(l.v);
    unlink(path);

    write_file(path, sizeof(path), "127.0.0.2\n\0" "127.0.0.3\n", 21);
    assert_false(config_read_endpoints(path, &l, err, sizeof(err)));
    assert_non_null(strstr(err, "endpoints_file: not a text file"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_a_aaaa),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_srv_endpoints),
        cmocka_unit_test(test_srv_weights),
        cmocka_unit_test(test_ttl_clamp),
        cmocka_unit_test(test_endpoints_file),
        cmocka_unit_test(test_endpoints_file_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
