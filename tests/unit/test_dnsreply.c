/*
 * test_dnsreply.c — the shim's answer to a program's own DNS query: which
 * messages are responses it may answer, and the answer built over the
 * name server's response (read back by dns_parse, as a resolver would);
 * a VIP's reverse name and its PTR answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <resolv.h>
#include <string.h>

#include "meshim/discovery.h"
#include "meshim/dnsreply.h"
#include "dnsmsg.h"

/* A name server's NXDOMAIN for qname, with an SOA in its authority section
 * (as kube-dns and dnsmasq send), flags as given. */
static void nxdomain(struct msg *m, unsigned flags, const char *qname, unsigned qtype)
{
    memset(m, 0, sizeof(*m));
    put16(m, 0xbeef);
    put16(m, flags);
    put16(m, 1);
    put16(m, 0);
    put16(m, 1);
    put16(m, 0);
    put_name(m, qname);
    put16(m, qtype);
    put16(m, ns_c_in);
    put16(m, 0xc00c);       /* SOA, its owner the question's name */
    put16(m, ns_t_soa);
    put16(m, ns_c_in);
    put16(m, 0);
    put16(m, 60);
    put16(m, 22);
    put_name(m, "ns.x");
    put_name(m, "h.x");
    for (int i = 0; i < 10; i++)
        put16(m, 0);
}

static struct netaddr v4(const char *ip)
{
    struct netaddr a = { .family = AF_INET };
    inet_pton(AF_INET, ip, &a.ip.v4);
    return a;
}

static struct netaddr v6(const char *ip)
{
    struct netaddr a = { .family = AF_INET6 };
    inet_pton(AF_INET6, ip, &a.ip.v6);
    return a;
}

static unsigned get16(const struct msg *m, size_t at)
{
    return (unsigned)(m->b[at] << 8 | m->b[at + 1]);
}

static void test_question_of_a_response(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    nxdomain(&m, 0x8183, "Orders.Prod.svc", ns_t_aaaa);
    assert_true(dns_reply_question(m.b, m.n, &q));
    assert_string_equal(q.name, "orders.prod.svc");
    assert_int_equal(q.type, ns_t_aaaa);
    assert_int_equal(q.class, ns_c_in);
    assert_int_equal(q.end, 12 + 17 + 4);
}

static void test_not_a_response_it_answers(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    nxdomain(&m, 0x0100, "orders", ns_t_a);            /* a query: a server's, not ours */
    assert_false(dns_reply_question(m.b, m.n, &q));
    nxdomain(&m, 0xa183, "orders", ns_t_a);            /* opcode NOTIFY */
    assert_false(dns_reply_question(m.b, m.n, &q));
    nxdomain(&m, 0x8183, "orders", ns_t_a);
    m.b[5] = 2;                                        /* two questions */
    assert_false(dns_reply_question(m.b, m.n, &q));
    nxdomain(&m, 0x8183, "orders", ns_t_a);
    assert_false(dns_reply_question(m.b, 11, &q));     /* no whole header */
    assert_false(dns_reply_question(m.b, 12 + 8 + 3, &q));  /* the question cut short */
    nxdomain(&m, 0x8183, "orders", ns_t_a);
    m.b[12] = 0xc0;                                    /* a pointer to itself */
    m.b[13] = 12;
    assert_false(dns_reply_question(m.b, m.n, &q));
    /* A pointer forward, into the records the answer replaces ("ns.x", in
     * the SOA): the answer would no longer read. */
    nxdomain(&m, 0x8183, "orders", ns_t_a);
    m.b[19] = 0xc0;
    m.b[20] = 12 + 8 + 4 + 12;
    assert_true(dn_expand(m.b, m.b + m.n, m.b + 12, (char[256]){ 0 }, 256) > 0);
    assert_false(dns_reply_question(m.b, m.n, &q));
}

/* NXDOMAIN for a service name becomes an authoritative answer with its
 * VIP: ID, question and RD kept, the authority record gone. */
static void test_a_answer(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    nxdomain(&m, 0x8183, "ORDERS", ns_t_a);
    assert_true(dns_reply_question(m.b, m.n, &q));
    struct netaddr addrs[] = { v6("::ffff:127.77.0.9"), v4("127.77.0.9") };
    size_t len = dns_reply_build(m.b, sizeof(m.b), &q, addrs, 2, DNS_REPLY_TTL_S);
    assert_int_equal(len, q.end + 16);
    assert_int_equal(get16(&m, 0), 0xbeef);
    assert_int_equal(get16(&m, 2), 0x8580);            /* QR AA RD RA, NOERROR */
    assert_int_equal(get16(&m, 4), 1);
    assert_int_equal(get16(&m, 6), 1);
    assert_int_equal(get16(&m, 8), 0);
    assert_int_equal(get16(&m, 10), 0);
    assert_memory_equal(m.b + 13, "ORDERS", 6);        /* the question as the program asked it */

    struct dns_record r[4];
    assert_int_equal(dns_parse(m.b, (int)len, r, 4), 1);
    assert_int_equal(r[0].type, ns_t_a);
    assert_string_equal(r[0].owner, "orders");
    assert_int_equal(r[0].ttl, DNS_REPLY_TTL_S);
    char ip[INET_ADDRSTRLEN];
    assert_string_equal(inet_ntop(AF_INET, &r[0].addr.ip.v4, ip, sizeof(ip)), "127.77.0.9");
}

static void test_aaaa_answer_and_no_data(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    struct netaddr mapped = v6("::ffff:127.77.0.9");
    nxdomain(&m, 0x8003, "orders", ns_t_aaaa);        /* RD off: stays off */
    assert_true(dns_reply_question(m.b, m.n, &q));
    size_t len = dns_reply_build(m.b, sizeof(m.b), &q, &mapped, 1, 7);
    assert_int_equal(len, q.end + 28);
    assert_int_equal(get16(&m, 2), 0x8480);
    struct dns_record r[2];
    assert_int_equal(dns_parse(m.b, (int)len, r, 2), 1);
    assert_int_equal(r[0].type, ns_t_aaaa);
    assert_int_equal(r[0].ttl, 7);
    assert_memory_equal(&r[0].addr.ip.v6, &mapped.ip.v6, 16);

    /* No address of the family asked: the name exists, no record. */
    struct netaddr vip = v4("127.77.0.9");
    nxdomain(&m, 0x8183, "orders", ns_t_aaaa);
    assert_true(dns_reply_question(m.b, m.n, &q));
    len = dns_reply_build(m.b, sizeof(m.b), &q, &vip, 1, 7);
    assert_int_equal(len, q.end);
    assert_int_equal(get16(&m, 2) & 0xf, 0);
    assert_int_equal(get16(&m, 6), 0);
    assert_int_equal(dns_parse(m.b, (int)len, r, 2), 0);

    /* Another type (MX, TXT): no data either. */
    nxdomain(&m, 0x8183, "orders", ns_t_mx);
    assert_true(dns_reply_question(m.b, m.n, &q));
    assert_int_equal(dns_reply_build(m.b, sizeof(m.b), &q, &vip, 1, 7), q.end);
}

/* A program's buffer too small for the answer: its response stays. */
static void test_no_room(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    struct netaddr vip = v4("127.77.0.9");
    nxdomain(&m, 0x8183, "orders", ns_t_a);
    assert_true(dns_reply_question(m.b, m.n, &q));
    struct msg before = m;
    assert_int_equal(dns_reply_build(m.b, q.end + 15, &q, &vip, 1, 7), 0);
    assert_memory_equal(m.b, before.b, m.n);
    assert_int_equal(dns_reply_build(m.b, q.end + 16, &q, &vip, 1, 7), q.end + 16);
}

static void test_ptr_address(void **state)
{
    (void)state;
    struct in_addr a;
    char ip[INET_ADDRSTRLEN];
    assert_true(dns_reply_ptr_address("9.0.77.127.in-addr.arpa", &a));
    assert_string_equal(inet_ntop(AF_INET, &a, ip, sizeof(ip)), "127.77.0.9");
    assert_true(dns_reply_ptr_address("255.0.10.1.in-addr.arpa", &a));
    assert_string_equal(inet_ntop(AF_INET, &a, ip, sizeof(ip)), "1.10.0.255");
    const char *not_one[] = {
        "0.77.127.in-addr.arpa",            /* a network, not an address */
        "1.9.0.77.127.in-addr.arpa",        /* a label too many */
        "256.0.77.127.in-addr.arpa", "09.0.77.127.in-addr.arpa", "x.0.77.127.in-addr.arpa",
        "9..77.127.in-addr.arpa", "in-addr.arpa", ".in-addr.arpa", "9.0.77.127.ip6.arpa",
        "9.0.77.127.in-addr.arpa.example", "orders",
    };
    for (size_t i = 0; i < sizeof(not_one) / sizeof(not_one[0]); i++)
        assert_false(dns_reply_ptr_address(not_one[i], &a));
}

/* A PTR answer: one record whose data is the name as labels, read back by
 * the resolver's own dn_expand. */
static void test_ptr_answer(void **state)
{
    (void)state;
    struct msg m;
    struct dns_question q;
    nxdomain(&m, 0x8183, "9.0.77.127.in-addr.arpa", ns_t_ptr);
    assert_true(dns_reply_question(m.b, m.n, &q));
    size_t len = dns_reply_build_ptr(m.b, sizeof(m.b), &q, "orders.shop.svc", 30);
    assert_int_equal(len, q.end + 12 + 17);
    assert_int_equal(get16(&m, 2), 0x8580);
    assert_int_equal(get16(&m, 6), 1);
    assert_int_equal(get16(&m, q.end + 2), ns_t_ptr);
    assert_int_equal(get16(&m, q.end + 10), 17);
    char name[256];
    assert_int_equal(dn_expand(m.b, m.b + len, m.b + q.end + 12, name, sizeof(name)), 17);
    assert_string_equal(name, "orders.shop.svc");
    struct dns_record r[2];
    assert_int_equal(dns_parse(m.b, (int)len, r, 2), 0);      /* a well-formed message */

    /* No room, a name no record can hold, a question of another type. */
    nxdomain(&m, 0x8183, "9.0.77.127.in-addr.arpa", ns_t_ptr);
    assert_true(dns_reply_question(m.b, m.n, &q));
    assert_int_equal(dns_reply_build_ptr(m.b, q.end + 12 + 16, &q, "orders.shop.svc", 30), 0);
    char label[70];
    memset(label, 'a', 64);
    label[64] = '\0';
    assert_int_equal(dns_reply_build_ptr(m.b, sizeof(m.b), &q, label, 30), 0);
    assert_int_equal(dns_reply_build_ptr(m.b, sizeof(m.b), &q, "a..b", 30), 0);
    nxdomain(&m, 0x8183, "9.0.77.127.in-addr.arpa", ns_t_a);
    assert_true(dns_reply_question(m.b, m.n, &q));
    assert_int_equal(dns_reply_build_ptr(m.b, sizeof(m.b), &q, "orders", 30), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_question_of_a_response),
        cmocka_unit_test(test_not_a_response_it_answers),
        cmocka_unit_test(test_a_answer),
        cmocka_unit_test(test_aaaa_answer_and_no_data),
        cmocka_unit_test(test_no_room),
        cmocka_unit_test(test_ptr_address),
        cmocka_unit_test(test_ptr_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
