/*
 * meshim — the command (SPEC §3.9).
 *
 *   meshim [-c FILE] PROGRAM [ARGS...]   run PROGRAM with the shim preloaded
 *   meshim check [-c FILE]               validate a config, show its services
 *   meshim doctor PROGRAM                can the shim reach this program?
 *   meshim stats [--prometheus] [--all] [--dir DIR] [PID]
 *   meshim exporter [--listen ADDR] [--dir DIR]
 *   meshim install DIR                   copy the library and the command into DIR
 *
 * Like torsocks and proxychains4, running a program is LD_PRELOAD plus exec;
 * the config is validated first so that a mistake is reported here, once,
 * rather than by every process the program starts.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "elfinfo.h"
#include "exporter.h"
#include "install.h"
#include "meshim/beside.h"
#include "meshim/certdir.h"
#include "meshim/config.h"
#include "meshim/registry.h"
#include "sharedview.h"
#include "statsview.h"
#include "tls/tls.h"

#ifndef MESHIM_LIBDIR
#define MESHIM_LIBDIR "/usr/local/lib/meshim"
#endif
#ifndef MESHIM_VERSION
#define MESHIM_VERSION "0.1.0"
#endif
#ifndef MESHIM_COMMIT
#define MESHIM_COMMIT "unknown"
#endif

static const char USAGE[] =
    "usage: meshim [-c FILE] PROGRAM [ARGS...]   run PROGRAM in the mesh\n"
    "       meshim check [[-c] FILE]             validate a config and list its services\n"
    "       meshim doctor PROGRAM                say whether the shim can reach PROGRAM\n"
    "       meshim stats [--prometheus] [--all] [--dir DIR] [PID]\n"
    "                                            counters of live meshed processes\n"
    "       meshim exporter [--listen ADDR] [--dir DIR]\n"
    "                                            serve them to Prometheus at /metrics\n"
    "                                            (default 127.0.0.1:9901)\n"
    "       meshim install DIR                   copy the library (with its TLS module), this\n"
    "                                            command and the example config beside it into DIR\n"
    "       meshim --version\n"
    "\n"
    "The config is FILE, else $MESHIM_CONFIG, else " MESHIM_DEFAULT_CONFIG ";\n"
    "MESHIM_SERVICES and the other MESHIM_* variables apply on top (see README).\n";

/* A command's argument it does not take (or an option's value missing):
 * which one, then the usage. */
static int bad_argument(const char *command, const char *arg)
{
    if (strcmp(arg, "--dir") == 0 || strcmp(arg, "--listen") == 0)
        fprintf(stderr, "meshim %s: %s needs a value\n\n", command, arg);
    else
        fprintf(stderr, "meshim %s: %s: not an argument it takes\n\n", command, arg);
    fputs(USAGE, stderr);
    return 2;
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

/* This executable's path (false without /proc). */
static bool self_exe(char *out, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", out, len - 1);
    if (n <= 0)
        return false;
    out[n] = '\0';
    return true;
}

/* libmeshim.so next to this executable (the build tree), in ../lib/meshim
 * (an install), or where `make install` put it. */
static bool find_library(char *out, size_t len)
{
    const char *forced = getenv("MESHIM_LIBRARY");
    if (forced && *forced) {
        snprintf(out, len, "%s", forced);
        return access(out, R_OK) == 0;
    }
    char exe[PATH_MAX];
    if (self_exe(exe, sizeof(exe))) {
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        const char *rel[] = { "/libmeshim.so", "/../lib/meshim/libmeshim.so" };
        for (size_t i = 0; i < 2; i++) {
            char candidate[PATH_MAX + 64];
            snprintf(candidate, sizeof(candidate), "%s%s", exe, rel[i]);
            if (realpath(candidate, out) && access(out, R_OK) == 0)
                return true;
        }
    }
    snprintf(out, len, "%s/libmeshim.so", MESHIM_LIBDIR);
    return access(out, R_OK) == 0;
}

/* find_library, saying where it looked when it finds nothing. */
static bool find_library_or_say(char *out, size_t len)
{
    if (find_library(out, len))
        return true;
    fprintf(stderr, "meshim: libmeshim.so not found next to this command, in ../lib/meshim "
            "or in %s (set MESHIM_LIBRARY)\n", MESHIM_LIBDIR);
    return false;
}

static void print_errors(const char *errors)
{
    for (const char *p = errors; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(stderr, "meshim: %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

static struct mesh_config *load_config(void)
{
    struct config_source src = { env_lookup, false, MESHIM_DEFAULT_CONFIG };
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *cfg = config_load(&src, &errors, &on_error);
    if (!cfg) {
        print_errors(errors);
        free(errors);
    }
    return cfg;
}

/* -c FILE: MESHIM_CONFIG, made absolute so that a program that changes
 * directory and execs another one still finds it. */
static int take_config_option(int *argc, char ***argv)
{
    if (*argc >= 2 && strcmp((*argv)[0], "-c") == 0) {
        char abs[PATH_MAX];
        if (!realpath((*argv)[1], abs)) {
            fprintf(stderr, "meshim: %s: cannot read: %s\n", (*argv)[1], strerror(errno));
            return -1;
        }
        setenv("MESHIM_CONFIG", abs, 1);
        *argc -= 2;
        *argv += 2;
    }
    return 0;
}

static void print_list(const char *label, char **v, size_t n)
{
    printf("  %-10s ", label);
    for (size_t i = 0; i < n; i++)
        printf("%s%s", i ? ", " : "", v[i]);
    printf("%s\n", n ? "" : "-");
}

/* A log path the shim would refuse at run time, said now: its lines would
 * go to stderr. /dev/stdout is the usual one (a link to the program's own
 * descriptor, which the shim never follows: observe/files.c). */
static void check_log_path(const char *key, const char *path)
{
    struct stat st;
    if (!path || path[0] != '/' || lstat(path, &st) != 0)
        return;
    const char *what = S_ISLNK(st.st_mode) ? "a symbolic link, never followed"
                     : S_ISDIR(st.st_mode) ? "a folder" : NULL;
    if (what)
        fprintf(stderr, "meshim: warning: %s = %s is %s: its lines would go to stderr; name the file itself, "
                "or stderr\n", key, path, what);
}

/* "2027-12-05 06:13 UTC" */
static void utc_text(long long t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M UTC", &tm))
        snprintf(buf, len, "?");
}

/* The identity loaded as the shim will load it, and what its peers will
 * make of it. False when the shim could not use it: it would fail every
 * connection that needs mTLS. */
static bool check_identity(const struct mesh_config *cfg, const struct tls_files *f)
{
    /* The key is often root's alone (0600) while a user checks the file:
     * the program, as root, reads it. Not this command's verdict to give. */
    const char *kinds[] = { "cert", "key", "ca" }, *paths[] = { f->cert, f->key, f->ca };
    for (int i = 0; i < 3; i++)
        if (faccessat(AT_FDCWD, paths[i], R_OK, AT_EACCESS) < 0 && errno == EACCES) {
            fprintf(stderr, "meshim: warning: [tls] %s %s: this user (uid %u) may not read it, so the identity "
                    "is not checked here: run meshim check as the program's user\n", kinds[i], paths[i],
                    (unsigned)geteuid());
            return true;
        }
    struct tls_identity_facts id;
    char why[TLS_WHY_MAX];
    if (!tls_identity_facts(cfg, f, &id, why, sizeof(why))) {
        fprintf(stderr, "meshim: %s: connections that need mTLS would fail\n", why);
        return false;
    }
    char from[32], until[32];
    utc_text(id.not_before, from, sizeof(from));
    utc_text(id.not_after, until, sizeof(until));
    long long now = (long long)time(NULL);
    printf("  %-10s %s (serial %s, valid until %s)\n", "identity", *id.name ? id.name : "(no URI or DNS name)",
           id.serial, until);
    bool ok = true;
    if (now >= id.not_after) {
        fprintf(stderr, "meshim: [tls] cert %s expired on %s: peers refuse it\n", f->cert, until);
        ok = false;
    } else if (now < id.not_before) {
        fprintf(stderr, "meshim: [tls] cert %s is not valid before %s: peers refuse it until then\n", f->cert,
                from);
        ok = false;
    } else if (id.not_after - now < 7 * 86400) {
        fprintf(stderr, "meshim: warning: [tls] cert %s expires in %lld hours\n", f->cert,
                (id.not_after - now) / 3600);
    }
    if (!*id.name)
        fprintf(stderr, "meshim: warning: [tls] cert %s names no URI or DNS: peers that check identity "
                "(identity =, allow =) refuse it\n", f->cert);
    if (*id.untrusted)
        fprintf(stderr, "meshim: warning: [tls] ca %s does not verify cert %s (%s): peers that trust the "
                "same bundle refuse it\n", f->ca, f->cert, id.untrusted);
    return ok;
}

/* Where a service's connections may go: its endpoints as known now, and
 * where more come from at run time. */
static void print_destinations(const struct service *s, const struct service_config *c)
{
    const struct endpoint_set *set = s->eps;
    printf("  %-10s ", "endpoints");
    for (size_t e = 0; e < set->n; e++)
        printf("%s%s%s", e ? ", " : "", set->ep[e]->label,
               set->ep[e]->addr.port ? "" : ":(app port)");
    printf("%s\n", set->n ? "" : "-");
    for (size_t e = 0; e < set->n; e++)
        if (set->ep[e]->target.weight != 1) {
            printf("  %-10s", "weights");
            for (size_t w = 0; w < set->n; w++)
                printf(" %s=%u", set->ep[w]->label, set->ep[w]->target.weight);
            printf("\n");
            break;
        }
    if (c->dns)
        printf("  %-10s %s (A/AAAA records, asked at run time)\n", "dns", c->dns);
    if (c->srv)
        printf("  %-10s %s (SRV records, asked at run time)\n", "srv", c->srv);
    if (c->endpoints_file)
        printf("  %-10s %s\n", "file", c->endpoints_file);
    if (c->addresses.n) {
        printf("  %-10s ", "addresses");
        for (size_t a = 0; a < c->addresses.n; a++) {
            char text[64];
            netaddr_format(&c->addresses.v[a], text, sizeof(text));
            printf("%s%s", a ? ", " : "", text);
        }
        printf("\n");
    }
    if (c->split.n) {
        printf("  %-10s ", "split");
        for (size_t t = 0; t < c->split.n; t++)
            printf("%s%s %u", t ? ", " : "", c->split.v[t].service, c->split.v[t].weight);
        printf("\n");
    }
}

/* A protocol = http service's request rules: retries, routes. */
static void print_http(const struct mesh_config *cfg, const struct service_config *c)
{
    char on[128];
    config_retry_on_text(c->retry_on, on, sizeof(on));
    printf("  %-10s http (retry_on %s; max_requests %u)\n", "protocol", *on ? on : "off",
           c->max_requests);
    for (size_t r = 0; r < cfg->n_routes; r++) {
        const struct route_config *rt = &cfg->routes[r];
        if (strcmp(rt->from, c->name) != 0)
            continue;
        printf("  %-10s %s: %s%s%s%s%s%s%s -> %s\n", "route", rt->name,
               rt->path ? "path " : "", rt->path ? rt->path : "",
               rt->path_prefix ? "path_prefix " : "", rt->path_prefix ? rt->path_prefix : "",
               rt->authority ? " authority " : "", rt->authority ? rt->authority : "",
               rt->headers.n ? " headers" : "", rt->to);
    }
}

/* One service as the shim will see it; MESHIM_EXIT_CONFIG when its
 * endpoints file does not load (the shim reads it at start). */
static int check_service(const struct mesh_config *cfg, struct service *s, uint64_t *rng)
{
    int status = 0;
    const struct service_config *c = service_cfg(s);
    if (c->endpoints_file) {
        /* The shim reads it at start: check it the same way. */
        struct endpoint_list l;
        char err[512];
        if (config_read_endpoints(c->endpoints_file, &l, err, sizeof(err))) {
            service_set_found(s, SOURCE_FILE, l.v, l.n, rng);
            free(l.v);
        } else {
            fprintf(stderr, "meshim: %s\n", err);
            status = MESHIM_EXIT_CONFIG;
        }
    }
    printf("service %s\n  %-10s %s\n  %-10s %s\n", s->name, "vip", s->vip_text, "lb",
           lb_policy_name(c->lb));
    print_list("hosts", c->hosts.v, c->hosts.n);
    print_destinations(s, c);
    if (c->tls == TLS_MTLS)
        printf("  %-10s mtls\n", "tls");
    if (c->health_check != HEALTH_OFF)
        printf("  %-10s %s%s every %ums (timeout %ums), down after %u failures, up after %u successes\n",
               "health",
               c->health_check == HEALTH_HTTP ? "http GET " : "tcp",
               c->health_check == HEALTH_HTTP ? (c->health_path ? c->health_path : "/") : "",
               c->health_interval_ms, c->health_timeout_ms, c->unhealthy_threshold, c->healthy_threshold);
    if (c->panic_threshold)
        printf("  %-10s below %u%% of endpoints usable, connects go to all\n", "panic", c->panic_threshold);
    if (c->protocol == PROTO_HTTP)
        print_http(cfg, c);
    return status;
}

/* Where the shim will read its identity from, as it will, and the
 * identity itself; MESHIM_EXIT_CONFIG when the shim could not use it. */
static int check_tls(const struct mesh_config *cfg)
{
    if (!config_has_identity(cfg))
        return 0;
    struct tls_files f;
    char why[PATH_MAX + 128];
    if (!tls_files_of(cfg, &f, why, sizeof(why))) {
        fprintf(stderr, "meshim: %s\n", why);
        return MESHIM_EXIT_CONFIG;
    }
    printf("tls\n  %-10s %s\n  %-10s %s\n  %-10s %s\n  %-10s %s\n", "layout", f.layout, "cert", f.cert, "key",
           f.key, "ca", f.ca);
    return check_identity(cfg, &f) ? 0 : MESHIM_EXIT_CONFIG;
}

static void check_inbound(const struct mesh_config *cfg)
{
    for (size_t i = 0; i < cfg->n_inbound; i++) {
        static const char *const MODES[] = { "strict", "permissive", "off" };
        const struct inbound_config *in = &cfg->inbound[i];
        printf("inbound %u\n  %-10s %s\n", in->port, "tls", MODES[in->tls]);
        if (in->tls == INBOUND_PERMISSIVE && in->detect_timeout_ms)
            printf("  %-10s a silent client is plaintext %u ms after the server spoke, else after 3 s\n",
                   "detect", in->detect_timeout_ms);
        else if (in->tls == INBOUND_PERMISSIVE)
            printf("  %-10s a silent client is refused after 3 s\n", "detect");
        /* Review finding 13: easy to read as "only these identities". */
        if (in->tls == INBOUND_PERMISSIVE && in->allow.n)
            fprintf(stderr, "meshim: warning: %s:%d: [inbound:%u] is permissive: plaintext clients are "
                    "let in without an identity, so `allow` only limits clients that use mTLS\n",
                    in->origin.file ? in->origin.file : "(config)", in->origin.line, in->port);
    }
}

static int cmd_check(int argc, char **argv)
{
    /* `meshim check FILE` too, as promtool check config and the other
     * checkers take it: FILE means -c FILE. */
    char *as_option[] = { (char *)"-c", argc == 1 && argv[0][0] != '-' ? argv[0] : NULL };
    if (as_option[1]) {
        argc = 2;
        argv = as_option;
    }
    if (take_config_option(&argc, &argv) < 0)
        return MESHIM_EXIT_CONFIG;
    if (argc != 0)
        return bad_argument("check", argv[0]);
    struct mesh_config *cfg = load_config();
    if (!cfg)
        return MESHIM_EXIT_CONFIG;
    if (!cfg->active) {
        printf("no config: MESHIM_CONFIG, /etc/meshim/meshim.ini and MESHIM_SERVICES are all "
               "unset (or MESHIM_DISABLE=1); the shim passes everything through\n");
        config_free(cfg);
        return 0;
    }
    uint64_t rng = 1;
    struct registry *reg = registry_build(cfg, NULL, &rng);
    if (!reg) {
        fprintf(stderr, "meshim: out of memory\n");
        return 1;
    }
    printf("config: %s%s\n", cfg->file ? cfg->file : "(none)",
           getenv("MESHIM_SERVICES") ? " + MESHIM_SERVICES" : "");
    check_log_path("access_log", cfg->access_log);
    check_log_path("log_file", cfg->log_file);
    int status = 0;
    for (size_t i = 0; i < reg->n_services; i++)
        if (check_service(cfg, reg->services[i], &rng))
            status = MESHIM_EXIT_CONFIG;
    if (check_tls(cfg))
        status = MESHIM_EXIT_CONFIG;
    check_inbound(cfg);
    registry_destroy(reg);
    config_free(cfg);
    return status;
}

/* Where PROGRAM is, as execvp would find it. */
static bool find_program(const char *name, char *out, size_t len)
{
    if (strchr(name, '/')) {
        snprintf(out, len, "%s", name);
        return access(out, X_OK) == 0;
    }
    const char *path = getenv("PATH");
    char *copy = strdup(path ? path : "/usr/local/bin:/usr/bin:/bin");
    bool found = false;
    for (char *save = NULL, *dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        snprintf(out, len, "%s/%s", dir, name);
        found = access(out, X_OK) == 0;
    }
    free(copy);
    return found;
}

/* path mapped read-only into *map (st its stat): -1 and errno when it
 * cannot be opened; otherwise 0, *map being MAP_FAILED for a file smaller
 * than an ELF header or one that cannot be mapped. */
static int map_file(const char *path, const unsigned char **map, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, st) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        errno = err;
        return -1;
    }
    *map = st->st_size >= (off_t)sizeof(Elf64_Ehdr)
        ? mmap(NULL, (size_t)st->st_size, PROT_READ, MAP_PRIVATE, fd, 0) : MAP_FAILED;
    close(fd);
    return 0;
}

/* Go's linker writes this magic at the start of every binary's build
 * information (.go.buildinfo), static or dynamic, stripped or not. */
static bool go_binary(const unsigned char *map, size_t size)
{
    return memmem(map, size, "\xff Go buildinf:", 14) != NULL;
}

/* The TLS module's path beside the library lib (TLS_MODULE_BESIDE). */
static void module_beside(const char *lib, char *out, size_t len)
{
    const char *slash = strrchr(lib, '/');
    snprintf(out, len, "%.*s" TLS_MODULE_BESIDE, slash ? (int)(slash + 1 - lib) : 0, lib);
}

/* Where a process preloading lib takes its TLS module from: the file
 * beside it, opened as it is, when meshim/beside.h allows it; else the
 * library's own copy, through the stats folder (tls/tls_loader.c). */
static void say_module(const char *lib)
{
    char module[PATH_MAX + 64];
    module_beside(lib, module, sizeof(module));
    struct stat lib_st, mod_st;
    int fd = -1;
    const char *refused;
    if (stat(lib, &lib_st) < 0 || (fd = open(module, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)) < 0 ||
        fstat(fd, &mod_st) < 0)         /* opened as the loader opens it */
        refused = strerror(errno);
    else
        refused = beside_refused(&mod_st, &lib_st, TLS_MODULE_SIZE);
    if (fd >= 0)
        close(fd);
    if (refused)
        printf("tls:      the library's own copy of its TLS module, through the stats folder "
               "(%s: %s)\n", module, refused);
    else
        printf("tls:      the TLS module beside the library, opened as it is (%s)\n", module);
}

/* What a user needs to know before blaming the mesh: a program the dynamic
 * linker never preloads into cannot be meshed (SPEC §3.10). */
static int cmd_doctor(int argc, char **argv)
{
    char path[PATH_MAX], lib[PATH_MAX];
    if (argc != 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    if (!find_program(argv[0], path, sizeof(path))) {
        fprintf(stderr, "meshim: %s: not found or not executable\n", argv[0]);
        return 1;
    }
    printf("program:  %s\n", path);
    bool have_lib = find_library(lib, sizeof(lib));
    printf("library:  %s\n", have_lib ? lib : "NOT FOUND (set MESHIM_LIBRARY)");
    if (have_lib)
        say_module(lib);
    struct stat st;
    const unsigned char *map;
    if (map_file(path, &map, &st) < 0) {
        fprintf(stderr, "meshim: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (map != MAP_FAILED && map[0] == '#' && map[1] == '!') {
        /* A script: what matters is its interpreter ("#!/usr/bin/env X"
         * means X as found on PATH). One level is enough in practice. */
        char line[PATH_MAX], *argv2[1];
        const unsigned char *nl = memchr(map + 2, '\n', (size_t)st.st_size - 2);
        size_t n = nl ? (size_t)(nl - map - 2) : (size_t)st.st_size - 2;
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1),
                 (const char *)map + 2);
        munmap((void *)map, (size_t)st.st_size);
        char *save = NULL, *interp = strtok_r(line, " \t", &save);
        if (interp && strcmp(interp, "/usr/bin/env") == 0)
            interp = strtok_r(NULL, " \t", &save);
        if (!interp) {
            printf("verdict:  a script without an interpreter\n");
            return 1;
        }
        static int depth;
        if (++depth > 4) {
            printf("verdict:  a chain of scripts too long to follow\n");
            return 1;
        }
        printf("script:   run by %s\n", interp);
        argv2[0] = interp;
        return cmd_doctor(1, argv2);
    }
    char loader[PATH_MAX];
    enum elf_kind kind = map == MAP_FAILED ? ELF_NOT_ELF
                                           : elf_interp(map, (size_t)st.st_size, loader, sizeof(loader));
    if (kind == ELF_NOT_ELF || kind == ELF_INVALID) {
        printf("verdict:  %s\n", kind == ELF_INVALID
               ? "not a valid ELF file (its headers point outside it)"
               : "not a 64-bit ELF executable (a script? run doctor on its interpreter)");
        if (map != MAP_FAILED)
            munmap((void *)map, (size_t)st.st_size);
        return 1;
    }
    const char *interp = kind == ELF_DYNAMIC ? loader : NULL;
    bool go = go_binary(map, (size_t)st.st_size);
    const char *verdict = NULL;
    if (!interp)
        verdict = go ? "a static Go binary: it never loads shared libraries, the shim cannot reach it"
                     : "a static binary: it never loads shared libraries, the shim cannot reach it";
    else if (strstr(interp, "musl"))
        verdict = "linked against musl (Alpine): not supported, the shim needs glibc";
    else if (st.st_mode & (S_ISUID | S_ISGID))
        verdict = "set-uid/set-gid: the dynamic linker ignores LD_PRELOAD (and the shim ignores "
                  "MESHIM_* variables) when it runs with raised privileges";
    else if (go)
        verdict = "a dynamically linked Go binary: it connects without libc, so names resolve to "
                  "endpoint addresses; no retries, balancing or mTLS for this program";
    printf("loader:   %s\n", interp ? interp : "(none: static)");
    printf("verdict:  %s\n", verdict ? verdict : "reachable: the shim will load into it");
    if (go && interp)
        printf("go:       names reach the shim only through Go's cgo resolver (GODEBUG=netdns=cgo, "
               "which `meshim PROGRAM` sets); a service with tls = mtls does not resolve\n");
    munmap((void *)map, (size_t)st.st_size);
    return verdict ? 1 : 0;
}

/* The program interpreter PROGRAM (as execvp finds it) asks for, or ""
 * when it is not a dynamically linked ELF file (a script, a static binary);
 * *go: it is a Go program. */
static void program_loader(const char *program, char *loader, size_t len, bool *go)
{
    char path[PATH_MAX];
    struct stat st;
    const unsigned char *map;
    loader[0] = '\0';
    *go = false;
    if (!find_program(program, path, sizeof(path)) || map_file(path, &map, &st) < 0 || map == MAP_FAILED)
        return;
    if (elf_interp(map, (size_t)st.st_size, loader, len) != ELF_DYNAMIC)
        loader[0] = '\0';
    *go = go_binary(map, (size_t)st.st_size);
    munmap((void *)map, (size_t)st.st_size);
}

/* Go resolves names with its own DNS client unless told to use the C
 * library's resolver (or its nsswitch.conf asks for more than files and
 * dns): only then does a service name reach the shim. GODEBUG settings the
 * user gave stay, and a netdns choice of theirs wins. */
static void go_use_libc_resolver(void)
{
    const char *old = getenv("GODEBUG");
    if (old && strstr(old, "netdns="))
        return;
    char *value;
    if (asprintf(&value, "%s%snetdns=cgo", old ? old : "", old && *old ? "," : "") < 0)
        return;     /* out of memory: Go's own resolver, as without meshim */
    setenv("GODEBUG", value, 1);
    free(value);
}

static int cmd_run(int argc, char **argv)
{
    char lib[PATH_MAX];
    if (take_config_option(&argc, &argv) < 0)
        return MESHIM_EXIT_CONFIG;
    if (argc < 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    struct mesh_config *cfg = load_config();
    if (!cfg)
        return MESHIM_EXIT_CONFIG;
    /* The user asked for the mesh, and with no config the shim would pass
     * everything through without a word (as it must under ld.so.preload):
     * said here, once. MESHIM_DISABLE=1 asks for that, and stays quiet. */
    if (!cfg->active && !cfg->disabled)
        fprintf(stderr, "meshim: no config (-c FILE, MESHIM_CONFIG, " MESHIM_DEFAULT_CONFIG
                " or MESHIM_SERVICES): %s runs outside the mesh\n", argv[0]);
    config_free(cfg);
    if (!find_library_or_say(lib, sizeof(lib)))
        return 127;
    /* glibc's loader preloads a glibc library; musl's loader would load it
     * too and stop the program at start (missing symbols): not started. */
    char loader[PATH_MAX];
    bool go;
    program_loader(argv[0], loader, sizeof(loader), &go);
    if (strstr(loader, "musl")) {
        fprintf(stderr, "meshim: %s is linked against musl (%s): the shim is built for glibc and would "
                "stop it at start; not started (run it without meshim, or a glibc build of it)\n",
                argv[0], loader);
        return 126;
    }
    /* Entries already in LD_PRELOAD keep their place before ours: a
     * sanitizer runtime must stay first, and an allocator or another
     * preload the user chose keeps its priority. */
    const char *old = getenv("LD_PRELOAD");
    size_t n = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *preload = malloc(n);
    if (old && strstr(old, lib))
        snprintf(preload, n, "%s", old);
    else
        snprintf(preload, n, "%s%s%s", old ? old : "", old && *old ? " " : "", lib);
    setenv("LD_PRELOAD", preload, 1);
    if (go && loader[0])
        go_use_libc_resolver();
    execvp(argv[0], argv);
    fprintf(stderr, "meshim: %s: %s\n", argv[0], strerror(errno));
    return errno == ENOENT ? 127 : 126;
}

/* The stats folder: --dir, else the config's stats_dir (MESHIM_STATS_DIR
 * included), else the default. */
static const char *stats_dir(const char *given, char *buf, size_t len)
{
    if (given)
        return given;
    config_default_stats_dir(buf, len);
    struct config_source src = { env_lookup, false, MESHIM_DEFAULT_CONFIG };
    char *errors = NULL;
    enum on_error on_error;
    struct mesh_config *cfg = config_load(&src, &errors, &on_error);
    if (cfg) {
        config_stats_dir(cfg, buf, len);
        config_free(cfg);
    } else {
        const char *env = getenv("MESHIM_STATS_DIR");
        if (env && *env)
            snprintf(buf, len, "%s", env);
    }
    free(errors);
    return buf;
}

/* stats_dir, and whether it stands for every user's folder: root asking
 * for the default one reads them all (statsview.h, stats_view_scan_users),
 * as a root server's workers run as other users. */
static const char *stats_dirs(const char *given, char *buf, size_t len, bool *every_user)
{
    const char *dir = stats_dir(given, buf, len);
    char mine[64];
    config_default_stats_dir(mine, sizeof(mine));
    *every_user = !given && geteuid() == 0 && strcmp(dir, mine) == 0;
    return dir;
}

/* The host's endpoint table in dir, after the processes' tables (a blank
 * line first when something was printed); nothing when there is none. */
static void print_shared(const char *dir, bool after, bool all_entries)
{
    struct shared_view v;
    char why[128];
    if (!shared_view_load(dir, &v, why, sizeof(why))) {
        if (errno != ENOENT)
            fprintf(stderr, "meshim: %s/%s: %s\n", dir, SHARED_FILE, why);
        return;
    }
    if (after)
        printf("\n");
    shared_render_table(&v, all_entries, stdout);
    shared_view_free(&v);
}

static int cmd_stats(int argc, char **argv)
{
    bool prometheus = false, all_entries = false;
    const char *dir = NULL;
    int pid = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--prometheus") == 0)
            prometheus = true;
        else if (strcmp(argv[i], "--all") == 0)
            all_entries = true;
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (argv[i][0] >= '1' && argv[i][0] <= '9' && !pid)
            pid = atoi(argv[i]);
        else
            return bad_argument("stats", argv[i]);
    }
    char buf[PATH_MAX];
    bool every_user;
    dir = stats_dirs(dir, buf, sizeof(buf), &every_user);
    if (strcmp(dir, "off") == 0) {
        fprintf(stderr, "meshim: stats_dir = off: processes keep no stats\n");
        if (!prometheus && !pid) {
            config_default_stats_dir(buf, sizeof(buf));
            print_shared(buf, true, all_entries);
        }
        return 1;
    }
    struct stats_view *views = NULL;
    int n = every_user ? stats_view_scan_users(pid, &views) : stats_view_scan(dir, pid, &views);
    const char *where = every_user ? "/tmp/meshim-UID (every user's folder)" : dir;
    if (n < 0) {
        if (errno != ENOENT) {
            fprintf(stderr, "meshim: %s: %s\n", dir, strerror(errno));
            return 1;
        }
        n = 0;
    }
    if (n == 0 && pid) {
        fprintf(stderr, "meshim: no stats of a live process %d in %s\n", pid, where);
        return 1;
    }
    if (prometheus) {
        stats_render_prometheus(views, n, stdout);
    } else if (n == 0) {
        printf("no live meshed process has stats in %s\n", where);
    } else {
        for (int i = 0; i < n; i++) {
            if (i)
                printf("\n");
            stats_render_table(&views[i], stdout);
        }
    }
    if (!prometheus && !pid)
        print_shared(dir, n > 0, all_entries);
    stats_view_free(views, n);
    return 0;
}

static int cmd_exporter(int argc, char **argv)
{
    const char *listen = "127.0.0.1:9901", *dir = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else
            return bad_argument("exporter", argv[i]);
    }
    char buf[PATH_MAX];
    bool all;
    dir = stats_dirs(dir, buf, sizeof(buf), &all);
    return exporter_run(listen, all ? NULL : dir);
}

/* The files of an installed meshim: the library this command would
 * preload, its TLS module when it is beside it (the library opens that
 * instead of comparing its own copy with one in the stats folder), the
 * command itself and, when it is there (the image's /mesh.ini), the
 * example config beside it. */
static int cmd_install(int argc, char **argv)
{
    if (argc != 1) {
        fputs(USAGE, stderr);
        return 2;
    }
    char lib[PATH_MAX], exe[PATH_MAX], ini[PATH_MAX + 16], module[PATH_MAX + 64];
    if (!find_library_or_say(lib, sizeof(lib)))
        return 127;
    module_beside(lib, module, sizeof(module));
    if (!self_exe(exe, sizeof(exe))) {
        fprintf(stderr, "meshim: /proc/self/exe: %s (is /proc mounted?)\n", strerror(errno));
        return 1;
    }
    snprintf(ini, sizeof(ini), "%.*smesh.ini", (int)(strrchr(exe, '/') + 1 - exe), exe);
    const struct install_file files[] = {
        { lib, "libmeshim.so", 0755, 0 },
        { module, TLS_MODULE_BESIDE, 0644, 1 },
        { exe, "meshim", 0755, 0 },
        { ini, "mesh.ini", 0644, 1 },
    };
    char err[PATH_MAX + 128];
    if (install_files(argv[0], files, sizeof(files) / sizeof(files[0]), err, sizeof(err)) < 0) {
        fprintf(stderr, "meshim: install: %s\n", err);
        return 1;
    }
    printf("meshim: installed %s/libmeshim.so and %s/meshim (preload the first: "
           "LD_PRELOAD=%s/libmeshim.so)\n", argv[0], argv[0], argv[0]);
    return 0;
}

int main(int argc, char **argv)
{
    argc--, argv++;
    if (argc == 0 || strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0) {
        fputs(USAGE, argc == 0 ? stderr : stdout);
        return argc == 0 ? 2 : 0;
    }
    if (strcmp(argv[0], "--version") == 0) {
        printf("meshim %s (commit %s)\n", MESHIM_VERSION, MESHIM_COMMIT);
        return 0;
    }
    if (strcmp(argv[0], "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(argv[0], "doctor") == 0)
        return cmd_doctor(argc - 1, argv + 1);
    if (strcmp(argv[0], "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(argv[0], "exporter") == 0)
        return cmd_exporter(argc - 1, argv + 1);
    if (strcmp(argv[0], "install") == 0)
        return cmd_install(argc - 1, argv + 1);
    if (strcmp(argv[0], "--") == 0)
        argc--, argv++;
    return cmd_run(argc, argv);
}
