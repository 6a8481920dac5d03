/*
 * kcipher.c — is the kernel's AES accelerated? (see kcipher.h)
 */
#include "meshim/kcipher.h"

#include <stdio.h>
#include <string.h>

/* The portable C implementations: a template over aes-generic or
 * aes-fixed-time (gcm_base(ctr(aes-generic),ghash-generic)) is one too. */
static bool portable(const char *driver)
{
    return strstr(driver, "aes-generic") || strstr(driver, "aes-fixed-time");
}

/* One line "key : value" (spaces around the colon as /proc/crypto pads
 * them): true with its value when the line's key is key. */
static bool field(const char *line, size_t len, const char *key, char *value, size_t cap)
{
    size_t k = strlen(key);
    if (len <= k || strncmp(line, key, k) != 0 || (line[k] != ' ' && line[k] != ':'))
        return false;
    const char *p = line + k, *end = line + len;
    while (p < end && *p == ' ')
        p++;
    if (p == end || *p++ != ':')
        return false;
    while (p < end && *p == ' ')
        p++;
    snprintf(value, cap, "%.*s", (int)(end - p), p);
    return true;
}

/* The block's verdict once it is read whole. */
static bool accelerated(const char *name, const char *driver)
{
    return (strcmp(name, "aes") == 0 || strcmp(name, "gcm(aes)") == 0) && driver[0] && !portable(driver);
}

bool kcipher_aes_accelerated(const char *text)
{
    char name[128] = "", driver[128] = "";
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len == 0) {                 /* the end of a block */
            if (accelerated(name, driver))
                return true;
            name[0] = driver[0] = '\0';
        } else if (!field(line, len, "name", name, sizeof(name))) {
            field(line, len, "driver", driver, sizeof(driver));
        }
        line = nl ? nl + 1 : NULL;
    }
    return accelerated(name, driver);
}

bool kcipher_ulp_listed(const char *text, const char *ulp)
{
    size_t n = strlen(ulp);
    for (const char *p = text; p && *p;) {
        p += strspn(p, " \t\n");
        size_t len = strcspn(p, " \t\n");
        if (len == n && n && strncmp(p, ulp, n) == 0)
            return true;
        p += len;
    }
    return false;
}
