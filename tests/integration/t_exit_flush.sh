# A program that ends without exit() — os._exit() in python3, the way
# multiprocessing's forked workers end, _exit() in a signal handler — has
# written bytes on an mTLS connection that the engine relays: they reach the
# peer whole, as the kernel sends what sits in a socket's buffer after a
# process ends (hook _exit/_Exit, mesh/relay.c relay_exit). A vfork
# child's _exit (subprocess whose exec failed) leaves the parent's relays
# alone: the parent goes on sending on its connection.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# The sink (tests/helpers/sink.py): meshed, strict; one line per connection,
# "BYTES SHA256", in the order the connections end.
sink=$(free_port)
tls_ini "$TMP/sink.ini" orders "[inbound:$sink]" "tls = strict"
MESHIM_CONFIG=$TMP/sink.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 tests/helpers/sink.py 127.0.0.2 "$sink" \
    "$TMP/sink.out" > "$TMP/sink.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$sink"
tls_ini "$TMP/cli.ini" web "[service:sink]" "endpoints = 127.0.0.2:$sink" "tls = mtls"

# lines N: waits until the sink has written N lines.
lines() {
    wait_until "[ \$(wc -l < '$TMP/sink.out' 2>/dev/null || echo 0) -ge $1 ]" ||
        fail "the sink has $(wc -l < "$TMP/sink.out" 2>/dev/null) lines, not $1: $(cat "$TMP/sink.out" 2>/dev/null)"
}
# sent DATA-EXPR: "BYTES SHA256" of a python bytes expression.
sent() {
    python3 -c "import hashlib; d = $1; print(len(d), hashlib.sha256(d).hexdigest())"
}
client() {
    MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "$1" 2> "$TMP/client.err" ||
        fail "client: $(cat "$TMP/client.err")"
}

# 1. os._exit right after sendall: 8 MB, then a small write (ended before
#    the relay has even begun), three times each.
big=$(sent "bytes(range(256)) * 32768")
small=$(sent "b'x' * 1000")
for i in 1 2 3; do
    client "
import os, socket
s = socket.create_connection(('sink', $sink))
s.sendall(bytes(range(256)) * 32768)
os._exit(0)"
    client "
import os, socket
s = socket.create_connection(('sink', $sink))
s.sendall(b'x' * 1000)
os._exit(0)"
done
lines 6
[ "$(grep -cx "$big" "$TMP/sink.out")" -eq 3 ] && [ "$(grep -cx "$small" "$TMP/sink.out")" -eq 3 ] ||
    fail "os._exit() after sendall: want 3 x '$big' and 3 x '$small', the sink got: $(cat "$TMP/sink.out")"
ok "os._exit() right after sendall: 3 x 8 MB and 3 x 1000 bytes arrived whole"

# 2. multiprocessing (fork): each worker connects, sends 256 KiB and
#    returns; multiprocessing ends it with os._exit.
: > "$TMP/sink.out"
part=$(sent "b'w' * 262144")
client "
import multiprocessing as mp, socket
def work(i):
    s = socket.create_connection(('sink', $sink))
    s.sendall(b'w' * 262144)
if __name__ == '__main__':
    mp.set_start_method('fork')
    ps = [mp.Process(target=work, args=(i,)) for i in range(4)]
    [p.start() for p in ps]
    [p.join() for p in ps]
    assert all(p.exitcode == 0 for p in ps), [p.exitcode for p in ps]"
lines 4
[ "$(grep -cx "$part" "$TMP/sink.out")" -eq 4 ] ||
    fail "4 multiprocessing workers: want 4 x '$part', the sink got: $(cat "$TMP/sink.out")"
ok "4 multiprocessing workers (ended by os._exit): each one's 256 KiB arrived"

# 3. _exit from a SIGTERM handler, mid-program.
: > "$TMP/sink.out"
MESHIM_CONFIG=$TMP/cli.ini shimmed python3 -c "
import os, signal, socket
signal.signal(signal.SIGTERM, lambda *a: os._exit(3))
s = socket.create_connection(('sink', $sink))
s.sendall(b'h' * 100000)
os.kill(os.getpid(), signal.SIGTERM)
signal.pause()" 2> "$TMP/client.err"
rc=$?
[ "$rc" -eq 3 ] || fail "the SIGTERM handler's os._exit(3): exit status $rc: $(cat "$TMP/client.err")"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'h' * 100000")" ] ||
    fail "_exit in a signal handler: the sink got $(cat "$TMP/sink.out")"
ok "_exit() from a SIGTERM handler: the 100000 bytes written before arrived"

# 4. A vfork child's _exit (python3's subprocess vforks; the exec fails, the
#    child calls _exit(255)) with a relayed connection open in the parent:
#    the parent's relay goes on, its later bytes arrive too.
: > "$TMP/sink.out"
client "
import socket, subprocess
s = socket.create_connection(('sink', $sink))
s.sendall(b'a' * 50000)
for i in range(3):
    try:
        subprocess.run(['$TMP/no-such-program'])
    except FileNotFoundError:
        pass
    else:
        raise SystemExit('the exec should have failed')
s.sendall(b'b' * 50000)
s.close()"
lines 1
[ "$(cat "$TMP/sink.out")" = "$(sent "b'a' * 50000 + b'b' * 50000")" ] ||
    fail "after 3 failed vfork+exec: the parent's connection got $(cat "$TMP/sink.out")"
ok "a vfork child's _exit leaves the parent's relay alone: all 100000 bytes arrived"
