/*
 * test_certdir.c — policy/certdir.c: which files an identity is read from
 * when [tls] dir names a folder in Kubernetes' or spiffe-helper's layout,
 * through the `..data` symlink those volumes swap on rotation.
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

#include "meshim/certdir.h"

#include "tmpdir.h"

static void put(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s/%s", base, dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
}

static void folder(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", base, name);
    assert_int_equal(mkdir(path, 0755), 0);
}

static const char *at(const char *name)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", base, name);
    return path;
}

static void expect_error(const char *dir, const char *part)
{
    struct tls_files f;
    char why[512] = "";
    if (certdir_resolve(dir, &f, why, sizeof(why)))
        fail_msg("%s was accepted (%s)", dir, f.cert);
    if (!strstr(why, part))
        fail_msg("expected \"%s\" in \"%s\"", part, why);
}

/* name resolves to these files of this layout (paths under the test's
 * folder). */
static void expect_files(const char *name, const char *layout, const char *cert, const char *key,
                         const char *ca)
{
    char dir[512], why[512] = "";
    struct tls_files f;
    snprintf(dir, sizeof(dir), "%s", at(name));
    if (!certdir_resolve(dir, &f, why, sizeof(why)))
        fail_msg("%s was refused: %s", dir, why);
    assert_string_equal(f.layout, layout);
    assert_string_equal(f.cert, at(cert));
    assert_string_equal(f.key, at(key));
    assert_string_equal(f.ca, at(ca));
}

/* A Secret volume: the files in a snapshot folder, ..data pointing to it;
 * the swap changes the folder every file is read from. */
static void test_kubernetes_swap(void **state)
{
    (void)state;
    folder("k8s");
    folder("k8s/..2026_12_01_10_00_00.1");
    put("k8s/..2026_12_01_10_00_00.1", "tls.crt");
    put("k8s/..2026_12_01_10_00_00.1", "tls.key");
    put("k8s/..2026_12_01_10_00_00.1", "ca.crt");
    assert_int_equal(symlink("..2026_12_01_10_00_00.1", at("k8s/..data")), 0);
    assert_int_equal(symlink("..data/tls.crt", at("k8s/tls.crt")), 0);

    expect_files("k8s", "kubernetes", "k8s/..2026_12_01_10_00_00.1/tls.crt",
                 "k8s/..2026_12_01_10_00_00.1/tls.key", "k8s/..2026_12_01_10_00_00.1/ca.crt");
    struct tls_files f;
    char why[512] = "";
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", at("k8s"));

    /* The writer's swap: a new folder, ..data_tmp, renamed over ..data. */
    folder("k8s/..2026_12_01_11_00_00.2");
    put("k8s/..2026_12_01_11_00_00.2", "tls.crt");
    assert_int_equal(symlink("..2026_12_01_11_00_00.2", at("k8s/..data_tmp")), 0);
    assert_true(certdir_resolve(dir, &f, why, sizeof(why)));
    assert_string_equal(f.cert, at("k8s/..2026_12_01_10_00_00.1/tls.crt"));   /* not swapped yet */
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", at("k8s/..data_tmp"));
    assert_int_equal(rename(tmp, at("k8s/..data")), 0);
    assert_true(certdir_resolve(dir, &f, why, sizeof(why)));
    assert_string_equal(f.key, at("k8s/..2026_12_01_11_00_00.2/tls.key"));

    /* ..data pointing at nothing (a swap gone wrong): an error, not a guess. */
    assert_int_equal(unlink(at("k8s/..data")), 0);
    assert_int_equal(symlink("..gone", at("k8s/..data")), 0);
    expect_error(dir, "No such file");
}

static void test_spiffe_helper_and_overrides(void **state)
{
    (void)state;
    folder("svid");
    put("svid", "svid.pem");
    put("svid", "svid_key.pem");
    put("svid", "svid_bundle.pem");
    expect_files("svid", "spiffe-helper", "svid/svid.pem", "svid/svid_key.pem", "svid/svid_bundle.pem");
    struct tls_files f;
    char why[512] = "";
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", at("svid"));

    /* [tls] ca beside dir replaces the folder's bundle. */
    struct mesh_config cfg = { .tls_dir = dir, .tls_ca = "/etc/ssl/mesh-ca.pem" };
    assert_true(config_has_identity(&cfg));
    assert_true(tls_files_of(&cfg, &f, why, sizeof(why)));
    assert_string_equal(f.cert, at("svid/svid.pem"));
    assert_string_equal(f.ca, "/etc/ssl/mesh-ca.pem");

    /* Files alone, as before. */
    struct mesh_config files = { .tls_cert = "/c.pem", .tls_key = "/k.pem", .tls_ca = "/ca.pem" };
    assert_true(tls_files_of(&files, &f, why, sizeof(why)));
    assert_string_equal(f.layout, "files");
    assert_string_equal(f.key, "/k.pem");
    struct mesh_config half = { .tls_cert = "/c.pem" };
    assert_false(config_has_identity(&half));
    assert_false(tls_files_of(&half, &f, why, sizeof(why)));
    assert_non_null(strstr(why, "needs dir, or cert, key and ca"));
}

static void test_refused(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", at("none"));
    expect_error(dir, "No such file");
    folder("empty");
    snprintf(dir, sizeof(dir), "%s", at("empty"));
    expect_error(dir, "neither tls.crt (Kubernetes, cert-manager) nor svid.pem (spiffe-helper)");
    /* Anyone may write: anyone could choose our trust bundle. */
    folder("open");
    put("open", "tls.crt");
    snprintf(dir, sizeof(dir), "%s", at("open"));
    assert_int_equal(chmod(dir, 0777), 0);
    expect_error(dir, "anyone may write to it");
    /* The snapshot ..data points to is checked too. */
    folder("snap");
    folder("snap/..v1");
    put("snap/..v1", "tls.crt");
    assert_int_equal(chmod(at("snap/..v1"), 0777), 0);
    assert_int_equal(symlink("..v1", at("snap/..data")), 0);
    snprintf(dir, sizeof(dir), "%s", at("snap"));
    expect_error(dir, "anyone may write to it");
    /* A Kubernetes volume's own folder: a root tmpfs of mode 1777. Through
     * a ..data of ours it is read; without one, anyone could have put the
     * files there. */
    folder("volume");
    folder("volume/..2026_12_01");
    put("volume/..2026_12_01", "tls.crt");
    snprintf(dir, sizeof(dir), "%s", at("volume"));
    assert_int_equal(chmod(dir, 01777), 0);
    struct tls_files f;
    char why[512] = "";
    assert_int_equal(symlink("..2026_12_01", at("volume/..data")), 0);
    if (!certdir_resolve(dir, &f, why, sizeof(why)))
        fail_msg("a Kubernetes volume folder was refused: %s", why);
    assert_string_equal(f.cert, at("volume/..2026_12_01/tls.crt"));
    assert_int_equal(unlink(at("volume/..data")), 0);
    put("volume", "tls.crt");
    expect_error(dir, "anyone may add files to it, and it has no ..data");
    /* ..data itself sticky and open: refused like any open folder. */
    assert_int_equal(chmod(at("volume/..2026_12_01"), 01777), 0);
    assert_int_equal(symlink("..2026_12_01", at("volume/..data")), 0);
    expect_error(dir, "anyone may write to it");
    if (geteuid() == 0) {
        /* A ..data someone else put there. */
        assert_int_equal(chmod(at("volume/..2026_12_01"), 0755), 0);
        assert_int_equal(lchown(at("volume/..data"), 65534, 65534), 0);
        expect_error(dir, "no ..data of this user or root");
        folder("theirs");
        put("theirs", "tls.crt");
        snprintf(dir, sizeof(dir), "%s", at("theirs"));
        assert_int_equal(chown(dir, 65534, 65534), 0);
        expect_error(dir, "owned by uid 65534");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kubernetes_swap, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_spiffe_helper_and_overrides, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_refused, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
