/*
 * test_elfinfo.c — cli/elfinfo.c: `meshim doctor` reads a program's ELF
 * headers without trusting them (security review, finding 9).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <string.h>

#include "elfinfo.h"

/* A small ELF: header, one PT_INTERP program header, the loader's path. */
struct tiny {
    Elf64_Ehdr eh;
    Elf64_Phdr ph;
    char interp[32];
};

static void make(struct tiny *t)
{
    memset(t, 0, sizeof(*t));
    memcpy(t->eh.e_ident, ELFMAG, SELFMAG);
    t->eh.e_ident[EI_CLASS] = ELFCLASS64;
    t->eh.e_phoff = offsetof(struct tiny, ph);
    t->eh.e_phentsize = sizeof(Elf64_Phdr);
    t->eh.e_phnum = 1;
    t->ph.p_type = PT_INTERP;
    t->ph.p_offset = offsetof(struct tiny, interp);
    strcpy(t->interp, "/lib64/ld-linux-x86-64.so.2");
    t->ph.p_filesz = strlen(t->interp) + 1;
}

static enum elf_kind kind_of(const struct tiny *t, size_t size, char *interp)
{
    return elf_interp((const unsigned char *)t, size, interp, 64);
}

static void test_good(void **state)
{
    (void)state;
    struct tiny t;
    char interp[64];
    make(&t);
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_DYNAMIC);
    assert_string_equal(interp, "/lib64/ld-linux-x86-64.so.2");
    t.ph.p_type = PT_LOAD;
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_STATIC);
    assert_int_equal(kind_of(&t, 10, interp), ELF_NOT_ELF);
}

/* The review's files, and their neighbours: each offset or length that
 * points past the end is refused, never followed. */
static void test_crafted(void **state)
{
    (void)state;
    struct tiny t;
    char interp[64];
    make(&t);
    t.eh.e_phoff = 0x7ffffff00000;                  /* evil.elf */
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    t.eh.e_phoff = UINT64_MAX - 8;                  /* wraps */
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    t.eh.e_phnum = 0xffff;                          /* too many headers */
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    t.ph.p_offset = 1u << 30;                       /* evil2.elf: PT_INTERP past the end */
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    t.ph.p_filesz = UINT64_MAX;
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    memset(t.interp, 'x', sizeof(t.interp));        /* no terminator in the segment */
    t.ph.p_filesz = sizeof(t.interp);
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
    make(&t);
    t.eh.e_phentsize = 4;                           /* shorter than a program header */
    assert_int_equal(kind_of(&t, sizeof(t), interp), ELF_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_crafted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
