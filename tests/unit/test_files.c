/*
 * test_files.c — observe/files.c: which folders the shim writes into, and
 * how it opens its files (security review, findings 1 and 7).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include "observe/files.h"

#include "tmpdir.h"

static void path_in(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", base, name);
}

static void expect_refused(const char *dir, bool secure, const char *why_part)
{
    char why[160] = "";
    struct stat st;
    int fd = files_open_dir(dir, secure, &st, why, sizeof(why));
    if (fd >= 0)
        fail_msg("%s was accepted", dir);
    if (!strstr(why, why_part))
        fail_msg("expected \"%s\" in \"%s\"", why_part, why);
}

static void test_dirs(void **state)
{
    (void)state;
    char dir[256], why[160];
    struct stat st;
    /* Missing: made, private. */
    path_in(dir, sizeof(dir), "stats");
    int fd = files_open_dir(dir, false, &st, why, sizeof(why));
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    /* World-writable: only with the sticky bit, and never for a set-uid
     * process. */
    chmod(dir, 0777);
    expect_refused(dir, false, "anyone may write to it and it is not sticky");
    chmod(dir, 01777);
    fd = files_open_dir(dir, false, &st, why, sizeof(why));
    assert_true(fd >= 0);
    close(fd);
    expect_refused(dir, true, "set-uid");

    /* A symlink to a folder is not followed. */
    char link[256];
    path_in(link, sizeof(link), "link");
    assert_int_equal(symlink(dir, link), 0);
    expect_refused(link, false, "not a folder");

    /* Someone else's folder (needs root to make one). */
    if (geteuid() == 0) {
        chmod(dir, 0755);
        assert_int_equal(chown(dir, 65534, 65534), 0);
        expect_refused(dir, false, "owned by uid 65534");
    }
}

static void test_private_file(void **state)
{
    (void)state;
    char why[160], name[64];
    struct stat st;
    int dfd = files_open_dir(base, false, &st, why, sizeof(why));
    assert_true(dfd >= 0);
    int fd = files_create_private(dfd, ".42.stats", 0644, name, sizeof(name), &st);
    assert_true(fd >= 0);
    assert_true(strncmp(name, ".42.stats.", 10) == 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_uid == geteuid());
    close(fd);
    /* Never the same name twice: a name someone prepared is never opened. */
    char again[64];
    fd = files_create_private(dfd, ".42.stats", 0644, again, sizeof(again), &st);
    assert_true(fd >= 0);
    assert_string_not_equal(name, again);
    close(fd);
    close(dfd);
}

/* A file made whose owner is not this process's user (its ids changed
 * after the open: here its file-system uid) is refused and its name goes:
 * such files once piled up in a folder, empty and in nobody's name. */
static void test_private_file_refused(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();                     /* setfsuid needs root */
    assert_int_equal(chmod(base, 0777), 0);     /* so that uid 65534 may create in it */
    int dfd = open(base, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    char name[64];
    struct stat st;
    setfsuid(65534);
    int fd = files_create_private(dfd, ".7.stats", 0644, name, sizeof(name), &st);
    int err = errno;
    setfsuid(0);
    assert_int_equal(fd, -1);
    assert_int_equal(err, EPERM);
    DIR *d = fdopendir(dfd);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, ".7.stats.", 9) == 0)
            fail_msg("%s was left in the folder", e->d_name);
    closedir(d);
}

static void test_log_files(void **state)
{
    (void)state;
    char file[256], fifo[256], link[256];
    path_in(file, sizeof(file), "log");
    path_in(fifo, sizeof(fifo), "fifo");
    path_in(link, sizeof(link), "link");
    int fd = files_open_log(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x\n", 2), 2);
    close(fd);
    /* A symlink planted where the log goes is not followed. */
    assert_int_equal(symlink(file, link), 0);
    assert_int_equal(files_open_log(link), -1);
    assert_int_equal(errno, ELOOP);
    /* A FIFO nobody reads: refused at once, never waited on. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(files_open_log(fifo), -1);
    assert_int_equal(errno, ENXIO);
    /* A FIFO that is read: taken, and writes to it never block. */
    int rd = open(fifo, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    fd = files_open_log(fifo);
    assert_true(fd >= 0);
    char chunk[4096] = { 0 };
    ssize_t n;
    while ((n = write(fd, chunk, sizeof(chunk))) > 0)
        ;
    assert_int_equal(n, -1);
    assert_int_equal(errno, EAGAIN);
    close(fd);
    close(rd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dirs, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_private_file, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_private_file_refused, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_log_files, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
