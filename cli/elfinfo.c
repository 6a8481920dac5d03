/*
 * elfinfo.c — an executable's loader, read without trusting the file (see
 * elfinfo.h; security review, finding 9: a crafted e_phoff or p_offset
 * crashed `meshim doctor`).
 */
#include "elfinfo.h"

#include <elf.h>
#include <stdint.h>
#include <string.h>

/* Is [off, off + n) inside a file of size bytes (no overflow)? */
static int inside(uint64_t off, uint64_t n, size_t size)
{
    return off <= size && n <= size - off;
}

enum elf_kind elf_interp(const unsigned char *file, size_t size, char *interp, size_t len)
{
    Elf64_Ehdr eh;
    interp[0] = '\0';
    if (size < sizeof(eh))
        return ELF_NOT_ELF;
    memcpy(&eh, file, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
        return ELF_NOT_ELF;
    if (eh.e_phnum && (eh.e_phentsize < sizeof(Elf64_Phdr) ||
                       !inside(eh.e_phoff, (uint64_t)eh.e_phnum * eh.e_phentsize, size)))
        return ELF_INVALID;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, file + eh.e_phoff + (uint64_t)i * eh.e_phentsize, sizeof(ph));
        if (ph.p_type != PT_INTERP)
            continue;
        if (ph.p_filesz == 0 || !inside(ph.p_offset, ph.p_filesz, size))
            return ELF_INVALID;
        const char *s = (const char *)file + ph.p_offset;
        size_t n = strnlen(s, ph.p_filesz);
        if (n == ph.p_filesz || n == 0 || n >= len)
            return ELF_INVALID;     /* not terminated inside its segment, empty, or absurd */
        memcpy(interp, s, n + 1);
        return ELF_DYNAMIC;
    }
    return ELF_STATIC;
}
