/*
 * install.h — `meshim install DIR`: the library and the command copied into
 * a folder another container mounts (the init-container way of injecting
 * the shim into a Kubernetes pod; see examples/kubernetes/).
 */
#ifndef MESHIM_INSTALL_H
#define MESHIM_INSTALL_H

#include <stddef.h>

struct install_file {
    const char *from;     /* a readable file */
    const char *name;     /* its name in the destination folder */
    int mode;             /* 0755 or 0644 */
    int optional;         /* a missing `from` is skipped, not an error */
};

/* Copies each file to dir/name through a temporary file renamed into
 * place, so that a process starting beside a half-done copy sees the old
 * file or the new one, never a torn one. Returns 0, or -1 with a one-line
 * reason in err. */
int install_files(const char *dir, const struct install_file *files, size_t n, char *err,
                  size_t errlen);

#endif
