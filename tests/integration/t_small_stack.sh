#!/usr/bin/env bash
# A thread with a small stack connects over mTLS. The first mTLS connect of
# a process loads the TLS module and, when another process of the user has
# already written it, compares the file with the library's copy: that ran in
# the connecting thread with a 64 KiB buffer on its stack, and perl under
# `ulimit -s 64` (its main thread's stack 64 KiB) died of SIGSEGV at its
# first blocking mTLS connect. Twice here: the first run writes the module
# file, the second compares it.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
port=$(free_port)
tls_ini "$TMP/server.ini" orders "[inbound:$port]" "tls = strict"
MESHIM_CONFIG=$TMP/server.ini LD_PRELOAD="$MESHIM_PRELOAD" start_backend 2 "$port"
wait_port 127.0.0.2 "$port"
tls_ini "$TMP/client.ini" web "[service:orders]" "endpoints = 127.0.0.2:$port" "tls = mtls"
for run in 1 2; do
    out=$( (ulimit -s 64 && MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" perl -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "orders:80") or die "down: $!\n";
        print $s "GET /who HTTP/1.0\r\n\r\n";
        my @l = <$s>;
        print((grep { /^backend-2$/ } @l) ? "up\n" : "short answer\n");' 2> "$TMP/perl.err"); echo "rc=$?")
    [ "$out" = "up
rc=0" ] || fail "run $run: perl with a 64 KiB stack over mTLS: '$out' (rc=139: SIGSEGV): $(cat "$TMP/perl.err")"
done
ok "perl with a 64 KiB stack: two blocking mTLS connects (the TLS module written, then compared)"
