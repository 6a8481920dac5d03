/*
 * elfinfo.h — what `meshim doctor` needs to know of an executable file:
 * is it a 64-bit ELF, and which program interpreter (dynamic loader) does
 * it ask for. The file is anyone's: every offset and length in it is
 * checked against its size before it is used.
 */
#ifndef MESHIM_ELFINFO_H
#define MESHIM_ELFINFO_H

#include <stddef.h>

enum elf_kind {
    ELF_NOT_ELF,        /* not a 64-bit ELF file */
    ELF_INVALID,        /* says it is one, but its headers point outside the file */
    ELF_STATIC,         /* no PT_INTERP: never loads shared libraries */
    ELF_DYNAMIC,        /* interp holds the loader's path */
};

/* Reads the ELF header and program headers of the size bytes at file. */
enum elf_kind elf_interp(const unsigned char *file, size_t size, char *interp, size_t len);

#endif
