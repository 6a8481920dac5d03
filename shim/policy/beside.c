/*
 * beside.c — may the TLS module beside the library be opened unread? (see
 * beside.h)
 */
#include "meshim/beside.h"

const char *beside_refused(const struct stat *module, const struct stat *library, size_t size)
{
    if (!S_ISREG(module->st_mode))
        return "not a file";
    if (module->st_uid != library->st_uid)
        return "not owned by the library's owner";
    if (module->st_mode & (S_IWGRP | S_IWOTH))
        return "writable by its group or others";
    /* A copy cut short would be mapped, and fault where it ends. */
    if (module->st_size < 0 || (size_t)module->st_size != size)
        return "not the module's size (cut short, or stripped?)";
    return NULL;
}
