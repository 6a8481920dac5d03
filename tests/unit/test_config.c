/*
 * test_config.c — the config parser: every key, every message, precedence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "meshim/config.h"
#include "meshim/mesh.h"

/* ------------------------------------------------------------- fixtures -- */

static const char *env_names[16];
static const char *env_values[16];
static size_t env_count;

static const char *fake_getenv(const char *name)
{
    for (size_t i = 0; i < env_count; i++)
        if (strcmp(env_names[i], name) == 0)
            return env_values[i];
    return NULL;
}

static void env_set(const char *name, const char *value)
{
    env_names[env_count] = name;
    env_values[env_count++] = value;
}

static char ini_path[64];

/* One file per test at a time: a test that loads several texts would
 * otherwise leave all but its last in /tmp. */
static void write_ini(const char *text)
{
    if (ini_path[0])
        unlink(ini_path);
    strcpy(ini_path, "/tmp/meshim-test-XXXXXX");
    int fd = mkstemp(ini_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    env_set("MESHIM_CONFIG", ini_path);
}

static int setup(void **state)
{
    (void)state;
    env_count = 0;
    ini_path[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (ini_path[0])
        unlink(ini_path);
    return 0;
}

static struct mesh_config *load(char **errors, bool secure)
{
    struct config_source src = { fake_getenv, secure, "/nonexistent/meshim.ini" };
    enum on_error on_error;
    return config_load(&src, errors, &on_error);
}

/* Loads text; expects success. */
static struct mesh_config *load_ok(const char *text)
{
    char *errors = NULL;
    if (text)
        write_ini(text);
    struct mesh_config *cfg = load(&errors, false);
    if (!cfg)
        fail_msg("unexpected errors:\n%s", errors);
    return cfg;
}

/* Loads text; expects failure with a message containing want. */
static void expect_error(const char *text, const char *want)
{
    char *errors = NULL;
    if (text)
        write_ini(text);
    struct mesh_config *cfg = load(&errors, false);
    if (cfg)
        fail_msg("expected an error containing \"%s\" for:\n%s", want, text ? text : "(env)");
    if (!strstr(errors, want))
        fail_msg("expected \"%s\" in:\n%s", want, errors);
    free(errors);
    if (text) {
        unlink(ini_path);
        ini_path[0] = '\0';
        env_count = 0;
    }
}

static const struct service_config *service(const struct mesh_config *c, const char *name)
{
    for (size_t i = 0; i < c->n_services; i++)
        if (strcmp(c->services[i].name, name) == 0)
            return &c->services[i];
    fail_msg("no service %s", name);
    return NULL;
}

/* ---------------------------------------------------------------- tests -- */

static void test_every_key(void **state)
{
    (void)state;
    struct mesh_config *c = load_ok(
        "[meshim]                      ; process-wide\n"
        "log_level = debug\n"
        "log_file = /tmp/meshim.log\n"
        "access_log = stderr\n"
        "access_log_callers = on\n"
        "stats_dir = /run/meshim\n"
        "shared_state = off\n"
        "vip_range = 127.88.0.0/24\n"
        "dns_server = 127.0.0.1:8600\n"
        "dns_capture = off\n"
        "on_error = passthrough\n"
        "io_uring = off\n"
        "[tls]\n"
        "cert = /etc/meshim/tls/cert.pem\n"
        "key  = /etc/meshim/tls/key.pem\n"
        "ca   = /etc/meshim/tls/ca.pem\n"
        "min_version = 1.3\n"
        "reload_interval = 2m\n"
        "ktls = off\n"
        "resumption = psk-only\n"
        "[service:orders]\n"
        "hosts = orders, orders.prod.svc.cluster.local, *.orders.svc\n"
        "addresses = 10.96.0.10, 10.96.0.11:80\n"
        "ports = 80, 8000-8100\n"
        "endpoints = 10.0.0.5:8080, 10.0.0.6:8080 weight=3, 10.0.0.7, [::1]:9000\n"
        "dns = orders.internal\n"
        "srv = _http._tcp.orders.service.consul\n"
        "endpoints_file = /etc/meshim/orders.endpoints\n"
        "lb = least_conn\n"
        "affinity = process\n"
        "late_accept = on\n"
        "connect_timeout = 250ms\n"
        "retries = 4\n"
        "retry_backoff = 10ms\n"
        "retry_backoff_max = 1s\n"
        "retry_budget = 35%\n"
        "eject_after = 7\n"
        "eject_time = 45s\n"
        "max_eject_percent = 60\n"
        "panic_threshold = 50%\n"
        "max_connections = 99\n"
        "max_requests = 7\n"
        "health_check = tcp\n"
        "health_interval = 3s\n"
        "health_timeout = 500ms\n"
        "healthy_threshold = 4\n"
        "unhealthy_threshold = 5\n"
        "tls = mtls\n"
        "identity = spiffe://mesh.local/ns/*/sa/orders\n"
        "sni = orders.mesh.local\n"
        "fault_abort = 5%\n"
        "fault_delay = 100ms\n"
        "fault_delay_percent = 12.5%\n"
        "[service:users]\n"
        "endpoints = 127.0.0.9\n"
        "split = orders 90, orders-v2 10\n"
        "[service:orders-v2]\n"
        "endpoints = 127.0.0.10\n"
        "[inbound:8443]\n"
        "tls = permissive\n"
        "allow = spiffe://mesh.local/ns/prod/*, spiffe://mesh.local/ns/ops/sa/admin\n"
        "detect_timeout = 150ms\n"
        "[inbound:9443]\n"
        "tls = permissive\n");
    assert_true(c->active);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_string_equal(c->log_file, "/tmp/meshim.log");
    assert_string_equal(c->access_log, "stderr");
    assert_true(c->access_log_callers);
    assert_false(c->shared_state);
    assert_string_equal(c->stats_dir, "/run/meshim");
    assert_int_equal(c->vip_range.prefix, 24);
    assert_string_equal(c->dns_server, "127.0.0.1:8600");
    assert_int_equal(c->dns_server_addr.port, 8600);      /* parsed once, for its users */
    assert_false(c->dns_capture);
    assert_int_equal(c->on_error, ON_ERROR_PASSTHROUGH);
    assert_false(c->io_uring);
    assert_string_equal(c->tls_cert, "/etc/meshim/tls/cert.pem");
    assert_string_equal(c->tls_key, "/etc/meshim/tls/key.pem");
    assert_string_equal(c->tls_ca, "/etc/meshim/tls/ca.pem");
    assert_int_equal(c->tls_min_version, 13);
    assert_int_equal(c->tls_reload_interval_ms, 120000);
    assert_false(c->tls_ktls);
    assert_true(c->tls_psk_only);

    const struct service_config *o = service(c, "orders");
    assert_int_equal(o->hosts.n, 3);
    assert_string_equal(o->hosts.v[2], "*.orders.svc");
    assert_int_equal(o->addresses.n, 2);
    assert_int_equal(o->addresses.v[1].port, 80);
    assert_int_equal(o->ports.n, 2);
    assert_int_equal(o->ports.v[1].lo, 8000);
    assert_int_equal(o->ports.v[1].hi, 8100);
    assert_int_equal(o->endpoints.n, 4);
    assert_int_equal(o->endpoints.v[1].weight, 3);
    assert_int_equal(o->endpoints.v[1].addr.port, 8080);
    assert_int_equal(o->endpoints.v[2].addr.port, 0);
    assert_int_equal(o->endpoints.v[3].addr.family, AF_INET6);
    assert_string_equal(o->dns, "orders.internal");
    assert_string_equal(o->srv, "_http._tcp.orders.service.consul");
    assert_string_equal(o->endpoints_file, "/etc/meshim/orders.endpoints");
    assert_int_equal(o->lb, LB_LEAST_CONN);
    assert_int_equal(o->affinity, AFFINITY_PROCESS);
    assert_true(o->late_accept);
    assert_int_equal(o->connect_timeout_ms, 250);
    assert_int_equal(o->retries, 4);
    assert_int_equal(o->retry_backoff_ms, 10);
    assert_int_equal(o->retry_backoff_max_ms, 1000);
    assert_true(o->retry_budget > 0.349 && o->retry_budget < 0.351);
    assert_int_equal(o->eject_after, 7);
    assert_int_equal(o->eject_time_ms, 45000);
    assert_int_equal(o->max_eject_percent, 60);
    assert_int_equal(o->panic_threshold, 50);
    assert_int_equal(o->max_requests, 7);
    assert_int_equal(o->max_connections, 99);
    assert_int_equal(o->health_check, HEALTH_TCP);
    assert_int_equal(o->health_interval_ms, 3000);
    assert_int_equal(o->health_timeout_ms, 500);
    assert_int_equal(o->healthy_threshold, 4);
    assert_int_equal(o->unhealthy_threshold, 5);
    assert_int_equal(o->tls, TLS_MTLS);
    assert_string_equal(o->identity, "spiffe://mesh.local/ns/*/sa/orders");
    assert_string_equal(o->sni, "orders.mesh.local");
    assert_true(o->fault_abort > 0.049 && o->fault_abort < 0.051);
    assert_int_equal(o->fault_delay_ms, 100);
    assert_true(o->fault_delay_percent > 0.1249 && o->fault_delay_percent < 0.1251);

    const struct service_config *u = service(c, "users");
    assert_int_equal(u->split.n, 2);
    assert_string_equal(u->split.v[0].service, "orders");
    assert_int_equal(u->split.v[0].weight, 90);
    assert_int_equal(u->hosts.n, 1);
    assert_string_equal(u->hosts.v[0], "users");     /* default: the section name */

    assert_int_equal(c->n_inbound, 2);
    assert_int_equal(c->inbound[0].port, 8443);
    assert_int_equal(c->inbound[0].tls, INBOUND_PERMISSIVE);
    assert_int_equal(c->inbound[0].allow.n, 2);
    assert_int_equal(c->inbound[0].detect_timeout_ms, 150);
    assert_int_equal(c->inbound[1].detect_timeout_ms, 1000);   /* the default */
    config_free(c);
}

static void test_builtin_defaults(void **state)
{
    (void)state;
    struct mesh_config *c = load_ok("[service:orders]\nendpoints = 127.0.0.2:80\n");
    const struct service_config *o = service(c, "orders");
    assert_int_equal(c->log_level, LOG_WARN);
    assert_string_equal(c->log_file, "stderr");
    assert_string_equal(c->access_log, "off");
    assert_int_equal(c->vip_range.prefix, 16);
    assert_int_equal(c->on_error, ON_ERROR_EXIT);
    assert_int_equal(o->lb, LB_P2C);
    assert_int_equal(o->connect_timeout_ms, 1000);
    assert_int_equal(o->retries, 2);
    assert_int_equal(o->retry_backoff_ms, 25);
    assert_int_equal(o->retry_backoff_max_ms, 250);
    assert_int_equal(o->eject_after, 5);
    assert_int_equal(o->eject_time_ms, 30000);
    assert_int_equal(o->max_eject_percent, 50);
    assert_int_equal(o->panic_threshold, 0);       /* SPEC §3.5: an ejection refuses */
    assert_int_equal(o->max_requests, 1024);       /* Envoy's default */
    assert_int_equal(o->max_connections, 1024);
    assert_int_equal(o->tls, TLS_OFF);
    assert_true(c->tls_ktls);
    assert_false(c->tls_psk_only);      /* resumed handshakes keep their key exchange */
    assert_true(c->shared_state);       /* on unless asked otherwise */
    assert_true(c->dns_capture);        /* the same */
    assert_true(c->io_uring);           /* auto: where the kernel and the process allow it */
    config_free(c);
}

/* eject_after = off is 0, which the breaker reads as "never eject". */
static void test_eject_after_off(void **state)
{
    (void)state;
    struct mesh_config *cfg = load_ok("[service:x]\nendpoints = 127.0.0.2\neject_after = off\n");
    assert_int_equal(cfg->services[0].eject_after, 0);
    assert_int_equal(cfg->services[0].affinity, AFFINITY_NONE);
    assert_false(cfg->services[0].late_accept);
    config_free(cfg);
}

static void test_defaults_section_inherited(void **state)
{
    (void)state;
    /* [defaults] after the services it applies to: order does not matter. */
    struct mesh_config *c = load_ok(
        "[service:a]\nendpoints = 127.0.0.2\nretries = 1\n"
        "[service:b]\nendpoints = 127.0.0.3\n"
        "[defaults]\nlb = round_robin\nretries = 3\nconnect_timeout = 2s\n");
    assert_int_equal(service(c, "a")->lb, LB_ROUND_ROBIN);
    assert_int_equal(service(c, "a")->retries, 1);          /* its own wins */
    assert_int_equal(service(c, "b")->retries, 3);
    assert_int_equal(service(c, "b")->connect_timeout_ms, 2000);
    config_free(c);
}

static void test_continuation_lines(void **state)
{
    (void)state;
    struct mesh_config *c = load_ok(
        "[service:a]\n"
        "endpoints = 127.0.0.2:80,\n"
        "    127.0.0.3:80 weight=2\n"
        "    127.0.0.4:80\n");
    const struct service_config *a = service(c, "a");
    assert_int_equal(a->endpoints.n, 3);
    assert_int_equal(a->endpoints.v[1].weight, 2);
    config_free(c);
}

/* One bad value per key, and the message it must produce. */
static void test_bad_values(void **state)
{
    (void)state;
    static const struct { const char *section, *line, *message; } CASES[] = {
        { "meshim", "log_level = loud", ":2: log_level: not one of error, warn, info, debug: \"loud\"" },
        { "meshim", "log_file = relative.log", "log_file: not stderr or an absolute path" },
        { "meshim", "access_log = somewhere", "access_log: not stderr, off or an absolute path" },
        { "meshim", "access_log_callers = yes", "access_log_callers: not on or off: \"yes\"" },
        { "meshim", "stats_dir = stats", "stats_dir: not off or an absolute path" },
        { "meshim", "vip_range = 127.77.0.0", "vip_range: not an IPv4 network" },
        { "meshim", "vip_range = 127.77.0.1/16", "vip_range: has host bits set" },
        { "meshim", "vip_range = ::1/64", "vip_range: not an IPv4 network" },
        { "meshim", "dns_server = consul", "dns_server: not an IP:port" },
        { "meshim", "dns_server = [::1]:53", "dns_server: an IPv4 address is needed" },
        { "meshim", "on_error = ignore", "on_error: not one of exit, passthrough" },
        { "meshim", "io_uring = on", "io_uring: not auto or off" },
        { "tls", "cert = cert.pem", "cert: not an absolute path: \"cert.pem\"" },
        { "tls", "key = key.pem", "key: not an absolute path" },
        { "tls", "ca = ca.pem", "ca: not an absolute path" },
        { "tls", "min_version = 1.1", "min_version: not 1.2 or 1.3" },
        { "tls", "ktls = on", "ktls: not auto or off" },
        { "tls", "resumption = psk", "resumption: not ecdhe or psk-only" },
        { "tls", "reload_interval = often", "reload_interval: not a duration" },
        { "tls", "reload_interval = 10ms", "reload_interval: shorter than 100ms" },
        { "service:x", "hosts = bad host!", "hosts: not a host name or *.suffix" },
        { "service:x", "addresses = 10.0.0.300", "addresses: not a list of IP or IP:port" },
        { "service:x", "ports = 0", "ports: not a list of ports or port ranges" },
        { "service:x", "ports = 90-80", "ports: not a list of ports or port ranges" },
        { "service:x", "endpoints = 127.0.0.2 weight=0", "endpoints: not a list of IP[:PORT] [weight=1..1000]" },
        { "service:x", "identity = spiffe://test.mesh/ns/prod/sa/orders",
          "[service:x]: identity is checked only over mTLS: set tls = mtls" },
        { "service:x", "sni = orders", "[service:x]: sni is sent only over mTLS: set tls = mtls" },
        { "inbound:8443", "tls = strict\ndetect_timeout = 500ms",
          "[inbound:8443]: detect_timeout is for tls = permissive (how long a client may stay silent" },
        { "inbound:8443", "tls = permissive\ndetect_timeout = soon", "detect_timeout: not a duration" },
        { "inbound:8443", "tls = off\nallow = spiffe://test.mesh/ns/prod/**",
          "[inbound:8443]: allow is checked only over mTLS, and tls = off lets every client in: set tls = strict" },
        { "service:x", "endpoints = orders.local:80",
          "endpoints: not a list of IP[:PORT] [weight=1..1000] (a host name goes in dns = NAME): \"orders.local:80\"" },
        { "service:x", "endpoints = 10.0.0.5:80, db weight=2",
          "endpoints: not a list of IP[:PORT] [weight=1..1000] (a host name goes in dns = NAME)" },
        { "service:x", "endpoints = 10.0.0.5:8o", "endpoints: not a list of IP[:PORT] [weight=1..1000]: " },
        { "service:x", "endpoints = 10.0.0.256", "endpoints: not a list of IP[:PORT] [weight=1..1000]: " },
        { "service:x", "endpoints = [fe80::1%eth0]:80",
          "endpoints: not a list of IP[:PORT] [weight=1..1000] (an IPv6 zone such as %eth0 is not taken: "
          "a link-local address cannot be an endpoint): \"[fe80::1%eth0]:80\"" },
        { "service:x", "endpoints = [fe80::1]:80",
          "endpoints: a link-local address (fe80::/10) cannot be an endpoint: it needs an interface" },
        { "service:x", "endpoints_file = endpoints.txt", "endpoints_file: not an absolute path" },
        { "service:x", "dns = orders!.local", "dns: not a DNS name: \"orders!.local\"" },
        { "service:x", "srv = _http._tcp.a b", "srv: not a DNS name" },
        { "service:x", "dns = orders.local\nhealth_check = tcp",
          "[service:x]: health_check = tcp needs a port to check: set ports" },
        { "service:x", "lb = fastest", "lb: not one of p2c, round_robin, least_conn, random" },
        { "service:x", "connect_timeout = 5", "connect_timeout: not a duration (use ms, s or m: \"250ms\"): \"5\"" },
        { "service:x", "retries = two", "retries: not a number: \"two\"" },
        { "service:x", "retries = -1", "retries: not a number" },
        { "service:x", "retry_backoff = 1h", "retry_backoff: not a duration" },
        { "service:x", "retry_backoff_max = fast", "retry_backoff_max: not a duration" },
        { "service:x", "retry_budget = 120%", "retry_budget: not a share from 0% to 100%" },
        { "service:x", "eject_after = 0", "eject_after: must be at least 1" },
        { "service:x", "eject_after = never", "eject_after: not a number or off" },
        { "service:x", "affinity = sticky", "affinity: not one of none, process" },
        { "service:x", "late_accept = yes", "late_accept: not on or off" },
        { "service:x", "eject_time = forever", "eject_time: not a duration" },
        { "service:x", "max_eject_percent = 101", "max_eject_percent: not a percentage from 0 to 100" },
        { "service:x", "max_connections = lots", "max_connections: not a number" },
        { "service:x", "max_requests = 0", "max_requests: must be at least 1" },
        { "service:x", "health_check = udp", "health_check: not one of off, tcp, http" },
        { "service:x", "health_path = healthz", "health_path: not a path (starts with '/')" },
        { "service:x", "health_path = /a b", "health_path: not a path (a space or a control character in it)" },
        { "service:x", "health_interval = 5", "health_interval: not a duration" },
        { "service:x", "health_timeout = x", "health_timeout: not a duration" },
        { "service:x", "healthy_threshold = 0", "healthy_threshold: must be at least 1" },
        { "service:x", "unhealthy_threshold = none", "unhealthy_threshold: not a number" },
        { "service:x", "tls = on", "tls: not one of off, mtls" },
        { "service:x", "fault_abort = half", "fault_abort: not a share" },
        { "service:x", "fault_delay = soon", "fault_delay: not a duration" },
        { "service:x", "fault_delay_percent = -5%", "fault_delay_percent: not a share" },
        { "service:x", "split = a 90 b", "split: not a list of \"SERVICE WEIGHT\"" },
        { "inbound:8443", "tls = required", "tls: not one of strict, permissive, off" },
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "[%s]\n%s\n[service:y]\nendpoints = 127.0.0.2\n",
                 CASES[i].section, CASES[i].line);
        if (strcmp(CASES[i].section, "service:x") == 0)
            snprintf(text, sizeof(text), "[%s]\n%s\nendpoints = 127.0.0.2\n", CASES[i].section,
                     CASES[i].line);
        expect_error(text, CASES[i].message);
    }
}

static void test_structure_errors(void **state)
{
    (void)state;
    expect_error("[service:a]\nendpoints = 127.0.0.2\n[frontend]\nx = 1\n",
                 ":3: [frontend]: unknown section");
    /* An unknown key names the section's key it is a typo of, else the
     * section it belongs in, else nothing more. */
    expect_error("[service:a]\nendpoints = 127.0.0.2\nretrys = 2\n",
                 ":3: retrys: unknown key in [service:a] (did you mean retries?)");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nretry = 2\n",
                 ":3: retry: unknown key in [service:a] (did you mean retries?)");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nhost = a\n",
                 ":3: host: unknown key in [service:a] (did you mean hosts?)");
    expect_error("[meshim]\nlog_levle = warn\n",
                 ":2: log_levle: unknown key in [meshim] (did you mean log_level?)");
    expect_error("[service:a]\nendpoints = 127.0.0.2\ncert = /c.pem\n",
                 ":3: cert: unknown key in [service:a] (a key of [tls])");
    expect_error("[tls]\nlb = p2c\n", ":2: lb: unknown key in [tls] (a key of [service:NAME] or [defaults])");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nfoo = 1\n", ":3: foo: unknown key in [service:a]\n");
    /* dns is one edit away, but dn is too short to say it is a typo */
    expect_error("[service:a]\nendpoints = 127.0.0.2\ndn = 1\n", ":3: dn: unknown key in [service:a]\n");
    expect_error("retries = 2\n", ":1: retries: key outside of any section");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nretries = 1\nretries = 2\n",
                 ":4: retries: set twice in [service:a] (first at line 3)");
    expect_error("[meshim]\nlog_level = warn\nlog_level = info\n",
                 ":3: log_level: set twice in [meshim] (first at line 2)");
    expect_error("[service:a]\nendpoints = 127.0.0.2\n[service:a]\n",
                 ":3: [service:a]: section appears twice (first at line 1)");
    expect_error("[meshim]\n[meshim]\n", ":2: [meshim]: section appears twice (first at line 1)");
    expect_error("[service:a b]\n", ":1: [service:a b]: not a valid service name");
    expect_error("[inbound:http]\n", ":1: [inbound:http]: not a port number from 1 to 65535");
    expect_error("[inbound:80]\n[inbound:80]\n", ":2: [inbound:80]: section appears twice");
    expect_error("[service:a]\nendpoints 127.0.0.2\n", ":2: syntax error");
    expect_error("[service:a\n", ":1: syntax error");
    char longline[400];
    memset(longline, 0, sizeof(longline));
    strcpy(longline, "[service:a]\nendpoints = ");
    for (int i = 0; i < 20; i++)
        strcat(longline, "127.0.0.2:8080, ");
    strcat(longline, "\n");
    expect_error(longline, ":2: line longer than 198 characters");
}

static void test_semantic_errors(void **state)
{
    (void)state;
    expect_error("[service:a]\nlb = random\n",
                 ":1: [service:a]: no endpoints (set endpoints, dns, srv, endpoints_file or split)");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nretry_backoff = 1s\nretry_backoff_max = 100ms\n",
                 "retry_backoff (1000ms) is longer than retry_backoff_max (100ms)");
    expect_error("[service:a]\nsplit = b 50, a 50\n", "split: \"b\" is not another service");
    expect_error("[service:a]\nsplit = b 0, c 0\n[service:b]\nendpoints = 127.0.0.2\n"
                 "[service:c]\nendpoints = 127.0.0.3\n", "split: the weights add up to 0");
    expect_error("[service:a]\nsplit = b 1\n[service:b]\nsplit = c 1\n[service:c]\nsplit = a 1\n",
                 "split: the services split back into a");
    expect_error("[service:a]\nendpoints = 127.0.0.2\ntls = mtls\n",
                 "tls = mtls needs [tls] dir, or cert, key and ca");
    /* health_check = http: its path only with it (a [defaults] one is for
     * the services that check). */
    expect_error("[service:a]\nendpoints = 127.0.0.2:80\nhealth_check = tcp\nhealth_path = /healthz\n",
                 "[service:a]: health_path is for health_check = http");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nhealth_check = http\n",
                 "[service:a]: health_check = http needs a port to check");
    struct mesh_config *hc = load_ok("[defaults]\nhealth_path = /healthz?deep=1\n"
                                     "[service:a]\nendpoints = 127.0.0.2:80\nhealth_check = http\n"
                                     "[service:b]\nendpoints = 127.0.0.3:80\nhealth_check = tcp\n");
    assert_int_equal(service(hc, "a")->health_check, HEALTH_HTTP);
    assert_string_equal(service(hc, "a")->health_path, "/healthz?deep=1");
    config_free(hc);
    expect_error("[inbound:8443]\nallow = spiffe://x/*\n",
                 ":1: [inbound:8443]: tls = strict needs [tls] dir, or cert, key and ca");
    expect_error("[service:a]\nendpoints = 127.0.0.2\nhosts = a, shared\n"
                 "[service:b]\nendpoints = 127.0.0.3\nhosts = SHARED.\n",
                 "[service:b]: hosts: \"SHARED.\" is already a host of [service:a]");
    expect_error("[service:a]\nendpoints = 127.0.0.2\naddresses = 10.96.0.1\n"
                 "[service:b]\nendpoints = 127.0.0.3\naddresses = 10.96.0.1:80\n",
                 "addresses: 10.96.0.1:80 is already an address of [service:a]");
    /* Same IP, other ports: two services; IPv6 compared too. */
    config_free(load_ok("[service:a]\nendpoints = 127.0.0.2\naddresses = 10.96.0.1:80, [fd00::1]:80\n"
                        "[service:b]\nendpoints = 127.0.0.3\naddresses = 10.96.0.1:81\n"));
    expect_error("[service:a]\nendpoints = 127.0.0.2\naddresses = [fd00::1]:80\n"
                 "[service:b]\nendpoints = 127.0.0.3\naddresses = 10.0.0.9, [fd00::1]\n",
                 "addresses: fd00::1 is already an address of [service:a]");
    expect_error("[meshim]\nvip_range = 127.77.0.0/30\n[service:a]\nendpoints = 127.0.0.2\n"
                 "[service:b]\nendpoints = 127.0.0.2\n[service:c]\nendpoints = 127.0.0.2\n",
                 "vip_range: 3 services do not fit in a /30");
    expect_error("[service:a]\nendpoints = 127.0.0.2:80, 127.0.0.3\nhealth_check = tcp\n",
                 "[service:a]: health_check = tcp needs a port to check: give every endpoint one, "
                 "or set ports");
    /* With ports, a port-less endpoint is checked on the first one. */
    config_free(load_ok("[service:a]\nendpoints = 127.0.0.3\nports = 8080\nhealth_check = tcp\n"));
}

static void test_unreadable_file(void **state)
{
    (void)state;
    env_set("MESHIM_CONFIG", "/nonexistent/dir/meshim.ini");
    expect_error(NULL, "/nonexistent/dir/meshim.ini: cannot read: No such file or directory");
}

/* Windows editors start a UTF-8 file with a byte order mark: the first
 * section is still a section (it was "key outside of any section"). */
static void test_byte_order_mark(void **state)
{
    (void)state;
    struct mesh_config *c = load_ok("\xEF\xBB\xBF[service:a]\r\nendpoints = 127.0.0.2:80\r\n");
    assert_int_equal(c->n_services, 1);
    assert_string_equal(c->services[0].name, "a");
    config_free(c);
}

/* Whoever may write the INI steers the process (and a root process's
 * access_log into any file): a file anyone may write, or another user's,
 * is refused, as the folders are. */
static void test_untrusted_file(void **state)
{
    (void)state;
    char *errors = NULL;
    write_ini("[service:a]\nendpoints = 127.0.0.2:80\n");
    assert_int_equal(chmod(ini_path, 0666), 0);
    assert_null(load(&errors, false));
    assert_non_null(strstr(errors, ": not trusted: anyone may write to it (chmod o-w)"));
    free(errors);
    assert_int_equal(chmod(ini_path, 0664), 0);     /* group write: the owner's choice */
    config_free(load_ok(NULL));
    if (geteuid() == 0) {
        assert_int_equal(chown(ini_path, 65534, 65534), 0);
        assert_null(load(&errors, false));
        assert_non_null(strstr(errors, ": not trusted: owned by uid 65534, neither this user (0) nor root"));
        free(errors);
    }
}

static void test_every_error_is_reported(void **state)
{
    (void)state;
    char *errors = NULL;
    write_ini("[service:a]\nendpoints = 127.0.0.2\nretries = two\nlb = fastest\n");
    assert_null(load(&errors, false));
    assert_non_null(strstr(errors, ":3: retries:"));
    assert_non_null(strstr(errors, ":4: lb:"));
    free(errors);
}

static void test_on_error_reported_on_failure(void **state)
{
    (void)state;
    char *errors = NULL;
    enum on_error on_error = ON_ERROR_EXIT;
    struct config_source src = { fake_getenv, false, NULL };
    write_ini("[service:a]\nretries = x\nendpoints = 127.0.0.2\n[meshim]\non_error = passthrough\n");
    assert_null(config_load(&src, &errors, &on_error));
    assert_int_equal(on_error, ON_ERROR_PASSTHROUGH);   /* even set after the error */
    free(errors);
    unlink(ini_path);
    env_count = 0;
    write_ini("[service:a]\nretries = x\nendpoints = 127.0.0.2\n");
    assert_null(config_load(&src, &errors, &on_error));
    assert_int_equal(on_error, ON_ERROR_EXIT);
    free(errors);
}

static void test_no_config_is_inert(void **state)
{
    (void)state;
    struct mesh_config *c = load_ok(NULL);
    assert_false(c->active);
    config_free(c);
}

static void test_disable_wins(void **state)
{
    (void)state;
    env_set("MESHIM_DISABLE", "1");
    /* Even a broken file is not read. */
    struct mesh_config *c = load_ok("[nonsense\n");
    assert_false(c->active);
    assert_int_equal(c->n_services, 0);
    config_free(c);
}

static void test_services_env(void **state)
{
    (void)state;
    env_set("MESHIM_SERVICES", "orders=10.0.0.5:8080,10.0.0.6:8080;users=127.0.0.9");
    struct mesh_config *c = load_ok(NULL);
    assert_true(c->active);
    assert_int_equal(c->n_services, 2);
    assert_int_equal(service(c, "orders")->endpoints.n, 2);
    assert_int_equal(service(c, "orders")->endpoints.v[1].addr.port, 8080);
    assert_int_equal(service(c, "users")->endpoints.v[0].addr.port, 0);
    assert_string_equal(service(c, "users")->hosts.v[0], "users");
    config_free(c);

    env_count = 0;
    env_set("MESHIM_SERVICES", "orders=10.0.0.5:99999");
    expect_error(NULL, "MESHIM_SERVICES: orders: endpoints: not a list of IP[:PORT]");
    env_count = 0;
    env_set("MESHIM_SERVICES", "orders");
    expect_error(NULL, "MESHIM_SERVICES: \"orders\": expected NAME=ENDPOINT,ENDPOINT");
}

static void test_env_wins_over_file(void **state)
{
    (void)state;
    env_set("MESHIM_LOG_LEVEL", "error");
    env_set("MESHIM_LOG_FILE", "/tmp/x.log");
    env_set("MESHIM_SERVICES", "orders=127.0.0.7:81");
    struct mesh_config *c = load_ok("[meshim]\nlog_level = debug\n[service:orders]\n"
                                    "endpoints = 127.0.0.2:80\nlb = random\n");
    assert_int_equal(c->log_level, LOG_ERROR);
    assert_string_equal(c->log_file, "/tmp/x.log");
    const struct service_config *o = service(c, "orders");
    assert_int_equal(o->endpoints.n, 1);
    assert_int_equal(o->endpoints.v[0].addr.port, 81);
    assert_int_equal(o->lb, LB_RANDOM);         /* the rest of the section stays */
    config_free(c);

    env_count = 0;
    env_set("MESHIM_LOG_LEVEL", "loud");
    expect_error(NULL, "MESHIM_LOG_LEVEL: not one of error, warn, info, debug: \"loud\"");
}

static void test_tls_env(void **state)
{
    (void)state;
    env_set("MESHIM_TLS_CERT", "/c.pem");
    env_set("MESHIM_TLS_KEY", "/k.pem");
    env_set("MESHIM_TLS_CA", "/ca.pem");
    struct mesh_config *c = load_ok("[service:a]\nendpoints = 127.0.0.2\ntls = mtls\n");
    assert_string_equal(c->tls_cert, "/c.pem");
    assert_string_equal(c->tls_key, "/k.pem");
    assert_string_equal(c->tls_ca, "/ca.pem");
    config_free(c);

    /* A folder alone is an identity; a relative one is refused. */
    env_count = 0;
    env_set("MESHIM_TLS_DIR", "/var/run/secrets/meshim");
    c = load_ok("[service:a]\nendpoints = 127.0.0.2\ntls = mtls\n");
    assert_string_equal(c->tls_dir, "/var/run/secrets/meshim");
    assert_null(c->tls_cert);
    config_free(c);
    expect_error("[tls]\ndir = secrets\n", "dir: not an absolute path");
    env_count = 0;
    expect_error("[service:a]\nendpoints = 127.0.0.2\ntls = mtls\n",
                 "tls = mtls needs [tls] dir, or cert, key and ca");
}

static void test_secure_ignores_env(void **state)
{
    (void)state;
    char *errors = NULL;
    env_set("MESHIM_SERVICES", "orders=127.0.0.2");
    env_set("MESHIM_CONFIG", "/nonexistent");
    struct mesh_config *c = load(&errors, true);
    assert_non_null(c);
    assert_false(c->active);
    config_free(c);
}

static void test_default_file(void **state)
{
    (void)state;
    char *errors = NULL;
    write_ini("[service:a]\nendpoints = 127.0.0.2\n");
    env_count = 0;                     /* no MESHIM_CONFIG: the default path */
    struct config_source src = { fake_getenv, false, ini_path };
    enum on_error on_error;
    struct mesh_config *c = config_load(&src, &errors, &on_error);
    assert_non_null(c);
    assert_string_equal(c->file, ini_path);
    assert_int_equal(c->n_services, 1);
    config_free(c);
}

static void test_tls_keys_built(void **state)
{
    (void)state;
    /* The mTLS keys are built: no notice for them any more. */
    struct mesh_config *c = load_ok("[tls]\ncert = /c.pem\nkey = /k.pem\nca = /ca.pem\n"
                                    "min_version = 1.3\n"
                                    "[service:a]\nendpoints = 127.0.0.2:80\ntls = mtls\n"
                                    "identity = spiffe://a/*\nsni = a.example\n"
                                    "[inbound:8443]\nallow = spiffe://b/*\n");
    assert_int_equal(c->tls_min_version, 13);
    assert_string_equal(c->services[0].identity, "spiffe://a/*");
    assert_string_equal(c->services[0].sni, "a.example");
    config_free(c);
}

/* An endpoints list wrapped over thousands of continuation lines is read
 * in linear time and memory: each line used to re-join and re-parse the
 * whole list (4,000 lines: ~650 MB; 20,000: 16 GB and 69 s, in every
 * program's start-up: review finding 5). Run under a 256 MB address-space
 * limit (not with ASan, whose shadow memory needs terabytes of it). The
 * number of endpoints is capped with a clear error. */
static char *wrapped_endpoints(unsigned n)
{
    char *text = malloc(64 + (size_t)n * 24);
    int len = sprintf(text, "[service:big]\nendpoints = 127.0.0.1:1\n");
    for (unsigned i = 1; i < n; i++)
        len += sprintf(text + len, "    10.%u.%u.%u:80\n", i >> 16 & 255, i >> 8 & 255, i & 255);
    return text;
}

static void test_long_continuation(void **state)
{
    (void)state;
    char *text = wrapped_endpoints(4096);
    write_ini(text);
    free(text);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
#ifndef __SANITIZE_ADDRESS__
        struct rlimit lim = { 256u << 20, 256u << 20 };
        setrlimit(RLIMIT_AS, &lim);
#endif
        char *errors = NULL;
        struct mesh_config *cfg = load(&errors, false);
        _exit(cfg && cfg->n_services == 1 && cfg->services[0].endpoints.n == 4096 ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    unlink(ini_path);
    ini_path[0] = '\0';
    env_count = 0;

    text = wrapped_endpoints(4097);
    expect_error(text, ":2: endpoints: more than 4096 endpoints: \"127.0.0.1:1, 10.0.0.1:80");
    free(text);
}

/* A config file that is not a regular file (a FIFO would block the
 * program's start until someone wrote to it) or is too large is refused. */
static void test_config_file_kinds(void **state)
{
    (void)state;
    char dir[] = "/tmp/meshim-test-XXXXXX", fifo[64];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof(fifo), "%s/fifo.ini", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    env_set("MESHIM_CONFIG", fifo);
    expect_error(NULL, "cannot read: not a regular file");
    unlink(fifo);
    rmdir(dir);
    /* One byte over the limit (a sparse file: the limit is 64 MiB). */
    env_count = 0;
    write_ini(";");
    assert_int_equal(truncate(ini_path, (off_t)CONFIG_FILE_MAX + 1), 0);
    expect_error(NULL, "cannot read: larger than 65536 KiB");
    unlink(ini_path);
    ini_path[0] = '\0';
}

static void test_duration_and_share(void **state)
{
    (void)state;
    uint32_t ms;
    double share;
    assert_true(config_parse_duration("250ms", &ms) && ms == 250);
    assert_true(config_parse_duration("3s", &ms) && ms == 3000);
    assert_true(config_parse_duration("5m", &ms) && ms == 300000);
    assert_true(config_parse_duration("0", &ms) && ms == 0);
    assert_false(config_parse_duration("5", &ms));
    assert_false(config_parse_duration("1.5s", &ms));
    assert_false(config_parse_duration("99999999m", &ms));
    assert_true(config_parse_share("20%", &share) && share > 0.199 && share < 0.201);
    assert_true(config_parse_share("0", &share) && share == 0);
    assert_false(config_parse_share("101%", &share));
    assert_false(config_parse_share("x%", &share));
    assert_true(config_parse_share("12.5%", &share) && share > 0.1249 && share < 0.1251);
    assert_true(config_parse_share("100.0", &share) && share == 1);
    assert_false(config_parse_share("100.5%", &share));
    assert_false(config_parse_share("1.%", &share));
    assert_false(config_parse_share("1,5%", &share));
    assert_false(config_parse_share("99999999999999999999%", &share));
    assert_false(config_parse_share("-1%", &share));
}

/* mesh.c: a relative MESHIM_CONFIG is kept made absolute against the
 * directory of start (the real environment, as the constructor sees it),
 * so that a reload after the program's chdir reads the same file. */
static void test_relative_config_kept_absolute(void **state)
{
    (void)state;
    write_ini("[service:a]\nendpoints = 127.0.0.2\n");
    char old[4096];
    assert_non_null(getcwd(old, sizeof(old)));
    assert_int_equal(chdir("/tmp"), 0);
    assert_int_equal(setenv("MESHIM_CONFIG", ini_path + strlen("/tmp/"), 1), 0);
    mesh_env_snapshot();
    assert_int_equal(chdir("/"), 0);
    assert_string_equal(mesh_env("MESHIM_CONFIG"), ini_path);
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *c = mesh_load_config(&errors, &on_error);
    assert_non_null(c);
    assert_string_equal(c->file, ini_path);
    assert_int_equal(c->n_services, 1);
    config_free(c);
    unsetenv("MESHIM_CONFIG");
    assert_int_equal(chdir(old), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eject_after_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_section_inherited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_continuation_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_structure_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_semantic_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_untrusted_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_order_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_error_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_on_error_reported_on_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_config_is_inert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_wins_over_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secure_ignores_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_keys_built, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_continuation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_file_kinds, setup, teardown),
        cmocka_unit_test(test_duration_and_share),
        cmocka_unit_test_setup_teardown(test_relative_config_kept_absolute, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
