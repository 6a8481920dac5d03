/*
 * tls_image.S — the TLS module (tls-module.so: tls.c with a static OpenSSL)
 * as bytes inside libmeshim.so; tls_loader.c loads it on first need. In
 * .rodata it costs nothing until then: never relocated, never touched.
 */
    .section .rodata.meshim_tls_image, "a"
    .balign 64
    .globl meshim_tls_image
    .hidden meshim_tls_image
meshim_tls_image:
    .incbin TLS_MODULE_PATH
    .globl meshim_tls_image_end
    .hidden meshim_tls_image_end
meshim_tls_image_end:
    .section .note.GNU-stack, "", @progbits
