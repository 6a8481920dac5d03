/*
 * install.c — `meshim install DIR` (install.h).
 *
 * The init container of a pod runs it from the meshim image to fill an
 * emptyDir the application container then preloads from. The application
 * may start (or restart, with the folder kept) while a copy is under way,
 * so every file is written beside its final name and renamed over it: a
 * loader that opens the path gets a whole old file or a whole new one.
 */
#include "install.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_fd(int in, int out)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                return -1;
            }
            off += w;
        }
    }
}

static int install_one(const char *dir, const struct install_file *f, char *err, size_t errlen)
{
    int in = open(f->from, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        if (errno == ENOENT && f->optional)
            return 0;
        snprintf(err, errlen, "%s: cannot read: %s", f->from, strerror(errno));
        return -1;
    }
    char tmp[4096], final[4096];
    snprintf(final, sizeof(final), "%s/%s", dir, f->name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.%ld", dir, f->name, (long)getpid());
    int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        close(in);
        return -1;
    }
    int rc = copy_fd(in, out);
    int saved = errno;
    close(in);
    if (rc == 0 && (fchmod(out, (mode_t)f->mode) < 0 || fsync(out) < 0))
        rc = -1, saved = errno;
    if (close(out) < 0 && rc == 0)
        rc = -1, saved = errno;
    if (rc == 0 && rename(tmp, final) < 0)
        rc = -1, saved = errno;
    if (rc < 0) {
        unlink(tmp);
        snprintf(err, errlen, "%s: cannot write: %s", final, strerror(saved));
    }
    return rc;
}

int install_files(const char *dir, const struct install_file *files, size_t n, char *err,
                  size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: not a folder (mount the shared volume there first)", dir);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (install_one(dir, &files[i], err, errlen) < 0)
            return -1;
    /* An emptyDir is created writable by everyone (0777): whoever else
     * runs in the pod could swap the library every process preloads.
     * Closed when this user owns the folder (the usual root init
     * container); otherwise the pod's own owner decided. */
    if (st.st_uid == geteuid() && (st.st_mode & 022))
        chmod(dir, st.st_mode & 0755);
    return 0;
}
