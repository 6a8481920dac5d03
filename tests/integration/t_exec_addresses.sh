# A relayed (mTLS) connection keeps its addresses across exec: servers that
# accept and then exec a handler see the client, not an AF_UNIX socketpair.
# - sshd (re-exec mode, the default: every connection is handled by a fresh
#   `sshd -R`) on a strict port: its log names the client's address,
#   SSH_CONNECTION carries both ends, and authorized_keys' from= is judged
#   on the real address (a key limited to 127.0.0.1 logs in, one limited to
#   10.9.9.9 is refused);
# - openbsd-inetd (nowait: accept, fork, exec) on a strict port: the handler,
#   a python3 program that only has fd 0, sees an AF_INET TCP socket with the
#   client's address and the port's, and takes TCP_NODELAY; the shim's own
#   log lines (log_level = info) never reach the client through the
#   handler's stderr, which is the socket;
# - ssh -f (ssh daemonizes once logged in): its forward keeps working
#   after its parent has ended (the relay goes on in a keeper); ssh with
#   ProxyUseFdpass logs in on the descriptor nc -F passed it and exited;
#   ssh with ControlPersist runs its commands through the master it forked;
# - a socketpair end bound to such a name by another user is not believed.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
made_privsep=
if [ ! -d /run/sshd ]; then mkdir -p /run/sshd && made_privsep=1; fi
trap 'cleanup; [ -z "$made_privsep" ] || rmdir /run/sshd' EXIT

# --- sshd, re-exec mode ----------------------------------------------------
sp=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$TMP/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$TMP/near"
ssh-keygen -q -t ed25519 -N '' -f "$TMP/far"
{ echo "from=\"127.0.0.1\" $(cat "$TMP/near.pub")"
  echo "from=\"10.9.9.9\" $(cat "$TMP/far.pub")"; } > "$TMP/authorized_keys"
cat > "$TMP/sshd_config" <<CONF
ListenAddress 127.0.0.2:$sp
HostKey $TMP/hostkey
PidFile $TMP/sshd.pid
AuthorizedKeysFile $TMP/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
LogLevel VERBOSE
CONF
tls_ini "$TMP/sshd.ini" orders "[inbound:$sp]" "tls = strict"
env MESHIM_CONFIG="$TMP/sshd.ini" LD_PRELOAD="$MESHIM_PRELOAD" \
    /usr/sbin/sshd -D -e -f "$TMP/sshd_config" > "$TMP/sshd.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$sp"
tls_ini "$TMP/ssh.ini" web "[service:box]" "endpoints = 127.0.0.2:$sp" "tls = mtls"
ssh_box() {
    MESHIM_CONFIG=$TMP/ssh.ini shimmed ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=10 \
        -i "$TMP/$1" -p "$sp" root@box 'echo "$SSH_CONNECTION"' 2> "$TMP/ssh-$1.err"
}
out=$(ssh_box near) || fail "ssh with the key from=127.0.0.1: $(cat "$TMP/ssh-near.err"; tail -5 "$TMP/sshd.log")"
read -r cip cport lip lport <<< "$out"
[ "$cip" = 127.0.0.1 ] && [ "$lip" = 127.0.0.2 ] && [ "$lport" = "$sp" ] && [ "${cport:-0}" -gt 0 ] \
    || fail "SSH_CONNECTION is '$out' (want 127.0.0.1 PORT 127.0.0.2 $sp)"
grep -q "Accepted publickey for root from 127.0.0.1 port $cport " "$TMP/sshd.log" \
    || fail "sshd's log does not name the client: $(grep -i accepted "$TMP/sshd.log")"
ok "sshd -R behind a strict port: SSH_CONNECTION='$out', logged from 127.0.0.1 port $cport"
ssh_box far > /dev/null && fail "a key limited to from=\"10.9.9.9\" logged in from 127.0.0.1"
grep -q "Permission denied" "$TMP/ssh-far.err" || fail "ssh with the far key: $(cat "$TMP/ssh-far.err")"
grep -q "not from a permitted host (host=127.0.0.1, ip=127.0.0.1, required=10.9.9.9)" "$TMP/sshd.log" \
    || fail "sshd did not judge from= on 127.0.0.1: $(tail -5 "$TMP/sshd.log")"
ok "authorized_keys from= judged on the client's address: 127.0.0.1 in, 10.9.9.9 refused"

# ssh -f: ssh forks once it has logged in (glibc's daemon()) and its parent
# ends; the relay of its mTLS connection goes on in a keeper process
# (mesh/relay.c relay_keep), so the forward it set up still carries
# requests. (Before, the relay ended with the parent and so did the
# daemon's connection.) The daemon is found by its forward's listening
# socket and stopped by that pid.
hp=$(free_port)
lp=$(free_port)
echo forwarded > "$TMP/fwd.txt"
python3 -m http.server "$hp" --bind 127.0.0.1 --directory "$TMP" > /dev/null 2>&1 &
PIDS+=($!)
wait_port 127.0.0.1 "$hp"
MESHIM_CONFIG=$TMP/ssh.ini shimmed ssh -f -N -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=10 -o ExitOnForwardFailure=yes \
    -i "$TMP/near" -p "$sp" -L "127.0.0.1:$lp:127.0.0.1:$hp" root@box 2> "$TMP/ssh-f.err" ||
    fail "ssh -f: $(cat "$TMP/ssh-f.err")"
fwd_pid=$(ss -Hltnp "sport = :$lp" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
[ -n "$fwd_pid" ] || fail "ssh -f left no forward listening on 127.0.0.1:$lp: $(cat "$TMP/ssh-f.err")"
PIDS+=($fwd_pid)
for i in 1 2 3; do
    got=$(curl -s --max-time 10 "http://127.0.0.1:$lp/fwd.txt") || true
    [ "$got" = forwarded ] ||
        fail "request $i through ssh -f's forward, ssh's parent gone: got '$got': $(cat "$TMP/ssh-f.err")"
done
ok "ssh -f -N -L through the strict sshd: 3 of 3 requests through the forward after ssh's parent ended"

# ssh's ProxyUseFdpass with nc -F: the proxy command (nc, under the shim)
# makes the mTLS connection, passes its descriptor to ssh (SCM_RIGHTS) and
# exits; ssh logs in on that descriptor. The passed descriptor counts as a
# fork child's copy: nc's relay goes on in a keeper (relay_note_passed).
# (Before, it ended with nc, and ssh saw the connection closed.)
out=$(MESHIM_CONFIG=$TMP/ssh.ini shimmed ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=10 \
    -o ProxyCommand='nc -F %h %p' -o ProxyUseFdpass=yes \
    -i "$TMP/near" -p "$sp" root@box 'echo "$SSH_CONNECTION"' 2> "$TMP/ssh-fdpass.err") ||
    fail "ssh with ProxyUseFdpass (nc -F): $(cat "$TMP/ssh-fdpass.err"; tail -3 "$TMP/sshd.log")"
read -r cip cport lip lport <<< "$out"
[ "$cip" = 127.0.0.1 ] && [ "$lip" = 127.0.0.2 ] && [ "$lport" = "$sp" ] ||
    fail "ssh with ProxyUseFdpass: SSH_CONNECTION is '$out'"
ok "ssh -o ProxyCommand='nc -F %h %p' -o ProxyUseFdpass=yes through the strict sshd: logged in on the descriptor nc passed ($out)"

# ssh with ControlPersist (ansible's default): the first ssh forks the
# master that keeps the mTLS connection in the background and then ends
# (its relay goes on in a keeper); later commands go through the master.
cp_ssh() {
    MESHIM_CONFIG=$TMP/ssh.ini shimmed ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o ConnectTimeout=10 \
        -o ControlMaster=auto -o ControlPersist=60 -o ControlPath="$TMP/cm-%C" \
        -i "$TMP/near" -p "$sp" root@box "$@"
}
for i in 1 2 3; do
    out=$(cp_ssh "echo run $i" 2> "$TMP/ssh-cp$i.err") || fail "ControlPersist, command $i: $(cat "$TMP/ssh-cp$i.err")"
    [ "$out" = "run $i" ] || fail "ControlPersist, command $i: got '$out': $(cat "$TMP/ssh-cp$i.err")"
    [ "$i" = 1 ] || continue
    master=$(cp_ssh -O check 2>&1 | sed -n 's/.*Master running (pid=\([0-9]*\)).*/\1/p')
    [ -n "$master" ] || fail "ControlPersist: no master after the first command: $(cp_ssh -O check 2>&1)"
    PIDS+=($master)
done
cp_ssh -O exit 2> /dev/null || true
ok "ssh with ControlPersist through the strict sshd: 3 commands through the background master ($master)"

# --- inetd: accept, fork, exec a handler -----------------------------------
ip=$(free_port)
cat > "$TMP/handler" <<'PY'
#!/usr/bin/python3
import socket
s = socket.socket(fileno=0)     # family and protocol from SO_DOMAIN, SO_PROTOCOL
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
peer, local = s.getpeername(), s.getsockname()
print(s.family.name, s.proto, peer[0], peer[1], local[0], local[1], flush=True)
PY
chmod +x "$TMP/handler"
# inetd starts its handlers with an empty environment: the shim and its
# config are given on the service's line (or /etc/ld.so.preload).
echo "127.0.0.2:$ip stream tcp nowait root /usr/bin/env env LD_PRELOAD=${MESHIM_PRELOAD// /:}" \
     "MESHIM_CONFIG=$TMP/inetd.ini $TMP/handler" > "$TMP/inetd.conf"
tls_ini "$TMP/inetd.ini" orders "[inbound:$ip]" "tls = strict"
env MESHIM_CONFIG="$TMP/inetd.ini" LD_PRELOAD="$MESHIM_PRELOAD" inetd -d -i "$TMP/inetd.conf" \
    > "$TMP/inetd.log" 2>&1 &
PIDS+=($!)
wait_port 127.0.0.2 "$ip"
tls_ini "$TMP/inetd-cli.ini" web "[service:handler]" "endpoints = 127.0.0.2:$ip" "tls = mtls"
MESHIM_CONFIG=$TMP/inetd-cli.ini shimmed python3 - "$ip" > "$TMP/inetd-cli.out" 2> "$TMP/inetd-cli.err" <<'PY' || inetd_failed=1
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("handler", port), timeout=10)
me = s.getsockname()
answer = b""
while d := s.recv(200):
    answer += d
want = "AF_INET 6 %s %d 127.0.0.2 %d\n" % (me[0], me[1], port)
assert answer.decode() == want, (answer, want)
print(answer.decode().strip())
PY
[ -z "${inetd_failed:-}" ] || fail "inetd handler over mTLS: $(cat "$TMP/inetd-cli.err"; tail -5 "$TMP/inetd.log")"
ok "inetd's exec'd handler sees its client over mTLS: $(cat "$TMP/inetd-cli.out")"

# --- a name is believed only from root or the same user ---------------------
# nobody binds a socketpair end to a name carrying 10.1.2.3:4567 and hands
# its other end to a root process (SCM_RIGHTS through a unix socket): root
# must see an AF_UNIX socket, not 10.1.2.3.
chmod o+rx "$TMP"
cat > "$TMP/forge.py" <<'PY'
import array, socket, struct, sys
addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 4567) + socket.inet_aton("10.1.2.3") + bytes(8)
name = b"\0meshim-addr1" + bytes(8) + addr
a, b = socket.socketpair()
b.bind(name)
c = socket.socket(socket.AF_UNIX)
c.connect(sys.argv[1])
c.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [a.fileno()]))])
c.recv(1)
PY
shimmed python3 - "$TMP/forge.sock" "$TMP/forge.py" > "$TMP/forge.out" 2>&1 <<'PY' &
import array, os, socket, subprocess, sys
l = socket.socket(socket.AF_UNIX); l.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); l.listen(1)
child = subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                          "python3", sys.argv[2], sys.argv[1]], env={})
c, _ = l.accept()
fds = array.array("i")
msg, anc, _, _ = c.recvmsg(1, socket.CMSG_LEN(4))
fds.frombytes(anc[0][2][:4])
s = socket.socket(fileno=fds[0])
print(s.family.name, repr(s.getpeername()))
c.send(b"x"); child.wait()
PY
forge_pid=$!
PIDS+=($forge_pid)
wait "$forge_pid" || fail "the forged name: $(cat "$TMP/forge.out")"
grep -qx "AF_UNIX b'\\\\x00meshim-addr1.*'" "$TMP/forge.out" \
    || fail "a name bound by nobody was believed: $(cat "$TMP/forge.out")"
ok "a name another user bound is not believed: $(cut -c1-40 "$TMP/forge.out")…"
