#!/usr/bin/env bash
# The shim's own writes never kill the program with SIGPIPE, nor stop it.
# A write to a pipe or socket whose other end has gone raises SIGPIPE in
# the writing thread, and perl (like any program that leaves SIGPIPE at its
# default) dies of it; a write to a full pipe waits for its reader. Unmeshed,
# each of these perl runs prints "down" and exits 0:
#   - its stderr is a pipe whose reader has gone (a log shipper that died,
#     `prog 2>&1 | head -1`), and its refused connect makes the shim write
#     a warning there: perl died of that line (-13);
#   - its stderr is a full pipe whose reader is alive and reads nothing (a
#     stuck log shipper, a parent that never reads): the warning's write
#     waited for a reader, and perl hung in its connect;
#   - a blocking connect (perl's IO::Socket::INET without Timeout) to an
#     mTLS service whose server sends its handshake flight and resets: the
#     TLS handshake, in perl's own thread, writes its flight to the dead
#     socket: perl died of it (-13, 3 runs of 3).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
refusing=$(free_port)      # nothing listens: the connect is refused, with a warning
resetting=$(free_port)
python3 "$ROOT/tests/helpers/flight_then_reset.py" 127.0.0.3 "$resetting" "$C" > "$TMP/reset.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.3 "$resetting"
tls_ini "$TMP/mesh.ini" web "[service:nobody-home]" "endpoints = 127.0.0.2:$refusing" "retries = 0" \
    "[service:resetting]" "endpoints = 127.0.0.3:$resetting" "tls = mtls" "retries = 0"

# run_perl NAME STDERR: perl connects to NAME:80 (blocking) under the shim,
# its SIGPIPE at the default (python ignores it; restore_signals gives the
# child the default back), its stderr a pipe without a reader (gone), a full
# pipe nobody reads (full) or a file (file); prints "EXIT STDOUT", or "hung".
run_perl() {
    MESHIM_CONFIG=$TMP/mesh.ini python3 - "$MESHIM_PRELOAD" "$1" "$2" "$TMP/perl.err" <<'PY'
import os, subprocess, sys
preload, name, stderr, errfile = sys.argv[1:5]
if stderr == "gone":
    r, w = os.pipe()
    os.close(r)
elif stderr == "full":
    r, w = os.pipe()            # r stays open, unread
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
else:
    w = os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
perl = ["perl", "-MIO::Socket::INET", "-e",
        "my $s = IO::Socket::INET->new(PeerAddr => '%s:80');"
        "print STDOUT ($s ? qq(up\\n) : qq(down\\n));" % name]
try:
    p = subprocess.run(perl, env=dict(os.environ, LD_PRELOAD=preload), stdout=subprocess.PIPE, stderr=w,
                       restore_signals=True, timeout=20)
    print(p.returncode, p.stdout.decode().strip())
except subprocess.TimeoutExpired:
    print("hung")       # run() has killed it
PY
}

out=$(run_perl nobody-home gone) || fail "the check itself failed"
[ "$out" = "0 down" ] ||
    fail "perl with a reader-less stderr pipe: '$out' (-13: killed by SIGPIPE), not '0 down'"
ok "perl with a stderr pipe nobody reads: its refused connect is logged into the pipe, and perl goes on"

out=$(run_perl nobody-home full) || fail "the check itself failed"
[ "$out" = "0 down" ] || fail "perl with a full stderr pipe: '$out' (hung: the warning waited for a reader), not '0 down'"
ok "perl with a full stderr pipe whose reader reads nothing: the warning is dropped, and perl goes on"

# Three runs whose handshake met the reset. On a busy host the server's
# reset can come after perl's flight went out: that handshake succeeds
# ("0 up"), tests nothing and is not counted; perl must live through every
# run all the same. At most 12 runs.
downs=0 runs=0
while [ $downs -lt 3 ] && [ $runs -lt 12 ]; do
    runs=$((runs + 1))
    out=$(run_perl resetting file) || fail "the check itself failed"
    case $out in
        "0 down") downs=$((downs + 1)) ;;
        "0 up") ;;
        *) fail "run $runs: perl's blocking mTLS connect to a server that reset mid-handshake: '$out'" \
                "(-13: killed by SIGPIPE), not '0 down': $(cat "$TMP/perl.err")" ;;
    esac
done
[ $downs -eq 3 ] || fail "the server's reset came after perl's flight in $((runs - downs)) of $runs runs"
grep -q "resetting: connect failed after 1 attempt; last: 127.0.0.3:$resetting: TLS handshake:" "$TMP/perl.err" ||
    fail "no warning for the failed handshake: $(cat "$TMP/perl.err")"
ok "perl's blocking mTLS connect to a server that resets mid-handshake: refused with a warning," \
   "3 of $runs runs (the others' handshakes done before the reset), no SIGPIPE"
