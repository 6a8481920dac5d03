/*
 * kcipher.h — which cipher a kernel TLS socket should run on this kernel.
 *
 * Kernel TLS encrypts with the kernel's own crypto, not OpenSSL's. A kernel
 * with AES instructions behind its AES (x86's aesni_intel, arm64's aes-ce)
 * runs AES-GCM fastest, and that is the order meshim's client offers. A
 * kernel with only its portable C AES (aes-generic, aes-fixed-time: user-
 * mode Linux, CPUs without AES instructions, a module not loaded) runs
 * ChaCha20-Poly1305 faster: in user-mode Linux a kernel TLS keep-alive
 * request costs about a fifth less CPU. BoringSSL makes the same choice for
 * its own code (EVP_has_aes_hardware).
 *
 * The kernel's algorithms are listed in /proc/crypto, one block per
 * implementation ("name : aes", "driver : aes-aesni", ...), blocks
 * separated by an empty line. This module reads that text; opening the
 * file is the caller's (mesh/ktls.c, which keeps AES-GCM first when it
 * cannot read it). It is unit-tested. So is whether the kernel has the
 * tls upper layer registered at all (kcipher_ulp_listed).
 */
#ifndef MESHIM_KCIPHER_H
#define MESHIM_KCIPHER_H

#include <stdbool.h>

/* Does /proc/crypto's text list an AES, or an AES-GCM, that is not one of
 * the kernel's portable C implementations? */
bool kcipher_aes_accelerated(const char *proc_crypto);

/* Does /proc/sys/net/ipv4/tcp_available_ulp's text (the TCP upper layers
 * registered, "mptcp tls\n") name ulp? */
bool kcipher_ulp_listed(const char *available_ulp, const char *ulp);

#endif
