/*
 * test_logfile.c — observe/logfile.c: the access log's file kept open,
 * found again after logrotate's rename-and-create, never a line lost or
 * torn while threads write and the file is rotated under them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "observe/logfile.h"

#include "tmpdir.h"

#define THREADS 4
#define LINES_MAX 2000000            /* per thread, a bound */
#define LINE_LEN 32

static char path[256];

/* Lines in the files path, path.1, path.2, ...: each must be a whole
 * "t<thread> <n>" line as written_one wrote it, else the test fails. */
static long count_lines(int rotated)
{
    long n = 0;
    for (int i = 0; i <= rotated; i++) {
        char name[300], line[256];
        if (i)
            snprintf(name, sizeof(name), "%s.%d", path, i);
        else
            snprintf(name, sizeof(name), "%s", path);
        FILE *f = fopen(name, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof(line), f)) {
            int t, k;
            if (strlen(line) != LINE_LEN || line[LINE_LEN - 1] != '\n' || sscanf(line, "t%d %d", &t, &k) != 2)
                fail_msg("a torn or foreign line in %s: \"%s\"", name, line);
            n++;
        }
        fclose(f);
    }
    return n;
}

static void write_one(struct logfile *f, const char *tag, int k)
{
    char line[LINE_LEN + 1];
    int n = snprintf(line, sizeof(line), "%s %-*d\n", tag, LINE_LEN - 2 - (int)strlen(tag), k);
    assert_int_equal(n, LINE_LEN);
    assert_true(logfile_write(f, path, line, (size_t)n, NULL));
}

static bool file_has_lines(const char *name)
{
    struct stat st;
    return stat(name, &st) == 0 && st.st_size > 0;
}

/* Kept open: lines go on into the file after it was renamed, until the
 * next look (a second at most) opens the new one at the path. */
static void test_rotation(void **state)
{
    (void)state;
    struct logfile f = LOGFILE_INIT;
    snprintf(path, sizeof(path), "%s/access.log", base);
    write_one(&f, "t0", 0);
    assert_int_equal(count_lines(0), 1);
    char moved[300];
    snprintf(moved, sizeof(moved), "%s.1", path);
    assert_int_equal(rename(path, moved), 0);
    int k = 1;
    struct timespec ms = { 0, 1000000 };
    for (; k < 5000 && !file_has_lines(path); k++) {
        write_one(&f, "t0", k);
        nanosleep(&ms, NULL);
    }
    assert_true(file_has_lines(path));      /* found again within 5 s */
    assert_int_equal(count_lines(1), k);    /* every line in one file or the other */
}

static struct logfile shared = LOGFILE_INIT;
static int stop;
static long written[THREADS];

static void *writer(void *arg)
{
    int i = (int)(intptr_t)arg;
    char tag[8];
    snprintf(tag, sizeof(tag), "t%d", i);
    struct timespec pause = { 0, 1000000 };     /* the files stay a few MB */
    for (int k = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED) && k < LINES_MAX; k++) {
        write_one(&shared, tag, k);
        written[i]++;
        if (k % 64 == 63)
            nanosleep(&pause, NULL);
    }
    return NULL;
}

/* Threads write while the file is rotated three times (each time once the
 * new file has lines, so each rotation is seen): nothing lost or torn. */
static void test_threads_and_rotations(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "%s/threads.log", base);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    int rotated = 0;
    struct timespec ms = { 0, 1000000 };
    for (int tries = 0; rotated < 3 && tries < 20000; tries++) {
        if (file_has_lines(path)) {
            char moved[300];
            snprintf(moved, sizeof(moved), "%s.%d", path, ++rotated);
            assert_int_equal(rename(path, moved), 0);
        }
        nanosleep(&ms, NULL);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    long total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += written[i];
    }
    assert_int_equal(rotated, 3);
    assert_int_equal(count_lines(rotated), total);
}

/* A path that cannot be a log file: false, with the open's errno. */
static void test_cannot_open(void **state)
{
    (void)state;
    struct logfile f = LOGFILE_INIT;
    snprintf(path, sizeof(path), "%s", base);   /* a folder */
    errno = 0;
    assert_false(logfile_write(&f, path, "x\n", 2, NULL));
    assert_int_equal(errno, EISDIR);
}

/* A FIFO (a log shipper reading the access log) is opened for each line:
 * kept open, a write once its reader had gone raised SIGPIPE, which kills
 * a program that leaves SIGPIPE at its default (perl did, status 141).
 * Here the default stays in force: the test dies if it is raised. */
static void test_fifo_reader_gone(void **state)
{
    (void)state;
    struct logfile f = LOGFILE_INIT;
    snprintf(path, sizeof(path), "%s/access.fifo", base);
    assert_int_equal(mkfifo(path, 0600), 0);
    int reader = open(path, O_RDONLY | O_NONBLOCK);
    assert_true(reader >= 0);
    assert_true(logfile_write(&f, path, "one\n", 4, NULL));
    char got[16] = "";
    assert_int_equal(read(reader, got, sizeof(got)), 4);
    close(reader);
    errno = 0;
    assert_false(logfile_write(&f, path, "two\n", 4, NULL));   /* nobody reads: not written */
    assert_int_equal(errno, ENXIO);
}

/* A vfork child (the exec hook may log in one) shares the owner's memory
 * but not its descriptors: its line opens the file for itself, and a
 * descriptor it opened is never kept where the owner would write to it. */
static void test_vfork_child(void **state)
{
    (void)state;
    struct logfile f = LOGFILE_INIT;
    snprintf(path, sizeof(path), "%s/meshim.log", base);
    logfile_own(&f);
    pid_t pid = vfork();
    if (pid == 0) {
        logfile_write(&f, path, "child\n", 6, NULL);
        _exit(0);
    }
    assert_true(pid > 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(f.fd[0], -1);          /* nothing of the child's kept */
    assert_int_equal(f.fd[1], -1);
    assert_true(logfile_write(&f, path, "parent\n", 7, NULL));
    assert_true(f.fd[0] >= 0 || f.fd[1] >= 0);  /* the owner's own, kept */
    char got[32] = "";
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    size_t n = fread(got, 1, sizeof(got) - 1, in);
    fclose(in);
    got[n] = '\0';
    assert_string_equal(got, "child\nparent\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rotation, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_threads_and_rotations, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_cannot_open, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_fifo_reader_gone, tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_vfork_child, tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
