# An exec that passes on a listening socket keeps the mesh in the new
# image, whatever environment the program gives it (shim/mesh/exec.h).
# Without that, a new image that inherits an [inbound:PORT] listener
# serves the strict port in the clear to anyone.
# - nginx's binary upgrade (SIGUSR2, then SIGQUIT to the old master): the
#   new master inherits the listener with only the variables nginx keeps
#   (TZ and NGINX); after the upgrade a meshed client still gets its file
#   over mTLS, a plaintext client gets nothing, and nginx still reaches
#   the service its proxy_pass names (a name only the mesh resolves: a new
#   master without the shim would not start);
# - python3 execs itself with an empty environment and the listener: the
#   new image accepts over mTLS only, and says why it got the mesh;
# - python3 posix_spawns a server with an empty environment, the listener
#   inherited or dup2'd by the spawn's file actions: the same;
# - the same with a listener on a port the config does not name: the new
#   image still reaches a service by name.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"

# plain_gets HOST PORT: what a plaintext client reads back for a GET ("" if
# the connection ends first).
plain_gets() {
    python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
try:
    s.sendall(b"GET /file HTTP/1.0\r\nHost: x\r\n\r\n")
    got = b""
    while d := s.recv(65536):
        got += d
except OSError:
    pass
print(got[:200].decode("latin-1").replace("\r\n", " | "))
PY
}
# meshed_get NAME PORT [PATH]: status and body a meshed client gets by
# service name.
meshed_get() {
    MESHIM_CONFIG=$TMP/client.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$1" "$2" "${3:-/file}" <<'PY' 2>> "$TMP/client.err"
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
c.request("GET", sys.argv[3])
r = c.getresponse()
print(r.status, r.read().decode().strip())
PY
}
maps_shim() { grep -q libmeshim "/proc/$1/maps"; }
# The server the exec'd and spawned python3 run on the listener they inherit.
SERVER=$ROOT/tests/helpers/inherited_server.py

# --- nginx's binary upgrade --------------------------------------------------
np=$(free_port)
bp=$(free_port)
d=$TMP/nginx
mkdir -p "$d/www"
echo "served over mTLS" > "$d/www/file"
chmod o+rx "$d/www"
chmod o+r "$d/www/file"
python3 "$ROOT/tests/helpers/http_backend.py" 127.0.0.3 "$bp" backend "$TMP/backend.log" 2> "$TMP/backend.err" &
PIDS+=($!)
wait_port 127.0.0.3 "$bp"
tls_ini "$TMP/server.ini" orders "[inbound:$np]" "tls = strict" "[service:backend]" "endpoints = 127.0.0.3:$bp"
sed -i "s|^log_level = info|log_level = info\nlog_file = $TMP/server-shim.log|" "$TMP/server.ini"
tls_ini "$TMP/client.ini" web "[service:web]" "endpoints = 127.0.0.2:$np" "tls = mtls"
sed -i "s|^log_level = info|log_level = warn\nstats_dir = $TMP/stats|" "$TMP/client.ini"

NGINX_DAEMON=1 start_nginx nginx \
    "server { listen 127.0.0.2:$np; root $d/www; location /up/ { proxy_pass http://backend:$bp/; } }" \
    MESHIM_CONFIG="$TMP/server.ini" LD_PRELOAD="$MESHIM_PRELOAD"
old=$(cat "$d/nginx.pid")
wait_port 127.0.0.2 "$np"
out=$(meshed_get web "$np")
[ "$out" = "200 served over mTLS" ] || fail "before the upgrade: '$out' $(cat "$TMP/client.err")"
up_want="200 backend GET /one host=backend:$bp attempt=None len=0"
out=$(meshed_get web "$np" /up/one)
[ "$out" = "$up_want" ] || fail "before the upgrade, proxy_pass to the service: '$out' $(cat "$TMP/client.err" "$d/error.log")"

kill -USR2 "$old"
wait_until "[ \"\$(cat '$d/nginx.pid' 2> /dev/null)\" != '$old' ] && [ -s '$d/nginx.pid' ]" ||
    fail "no new master after SIGUSR2: $(tail -5 "$d/error.log")"
new=$(cat "$d/nginx.pid")
PIDS+=("$new")
kill -QUIT "$old"
wait_until "! kill -0 $old 2> /dev/null" || fail "the old master $old did not end"
maps_shim "$new" || fail "the new master $new runs without the shim"
out=$(meshed_get web "$np")
[ "$out" = "200 served over mTLS" ] || fail "after the upgrade, over mTLS: '$out' $(cat "$TMP/client.err")"
out=$(plain_gets 127.0.0.2 "$np")
case $out in *"served over"*|*HTTP/1.1*) fail "after the upgrade, a plaintext client was served: $out" ;; esac
out=$(meshed_get web "$np" /up/one)
[ "$out" = "$up_want" ] || fail "after the upgrade, proxy_pass to the service: '$out' $(cat "$TMP/client.err" "$d/error.log")"
grep -q "inherits the listener of \[inbound:$np\], so it gets the mesh" "$TMP/server-shim.log" ||
    fail "no line on the exec: $(cat "$TMP/server-shim.log")"
ok "nginx's binary upgrade: the new master ($new) has the shim; mTLS served, plaintext refused, proxy_pass by service name"

# --- python3 execs itself with an empty environment --------------------------
pp=$(free_port)
tls_ini "$TMP/py.ini" orders "[inbound:$pp]" "tls = strict"
tls_ini "$TMP/client.ini" web "[service:pyweb]" "endpoints = 127.0.0.2:$pp" "tls = mtls"
sed -i "s|^log_level = info|log_level = warn\nstats_dir = $TMP/stats|" "$TMP/client.ini"
MESHIM_CONFIG=$TMP/py.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$pp" "$SERVER" \
    > "$TMP/py.out" 2> "$TMP/py.err" <<'PY' &
import os, socket, sys
ls = socket.socket()
ls.bind(("127.0.0.2", int(sys.argv[1])))
ls.listen(16)
os.set_inheritable(ls.fileno(), True)
os.execve(sys.executable, [sys.executable, sys.argv[2], str(ls.fileno())], {})
PY
PIDS+=($!)
pid=$!
wait_port 127.0.0.2 "$pp"
# The listener is there before the exec: only an answer says the new image
# runs (its maps, read earlier, may be those of an image half made).
out=$(meshed_get pyweb "$pp")
[ "$out" = "200 served over mTLS" ] || fail "python3 after an exec with an empty environment: '$out' $(cat "$TMP/client.err" "$TMP/py.err")"
maps_shim "$pid" || fail "python3 after its exec runs without the shim: $(cat "$TMP/py.err")"
out=$(plain_gets 127.0.0.2 "$pp")
case $out in *"served over"*|*HTTP/1.0*) fail "python3 after its exec served a plaintext client: $out" ;; esac
grep -q "exec of .*python.*inherits the listener of \[inbound:$pp\], so it gets the mesh" "$TMP/py.err" ||
    fail "no line on the exec: $(cat "$TMP/py.err")"
ok "python3 exec'd with an empty environment and the listener: mTLS served, plaintext refused"

# --- python3 hands the listener to a program it posix_spawns ----------------
# glibc's posix_spawn runs its exec in a child no hook sees: the rule runs
# in the parent, for a listener without FD_CLOEXEC (inherit) and for one
# the spawn's file actions dup2 onto descriptor 3 (dup2).
for how in inherit dup2; do
    sp=$(free_port)
    tls_ini "$TMP/spawn.ini" orders "[inbound:$sp]" "tls = strict"
    tls_ini "$TMP/client.ini" web "[service:pyspawn]" "endpoints = 127.0.0.2:$sp" "tls = mtls"
    sed -i "s|^log_level = info|log_level = warn\nstats_dir = $TMP/stats|" "$TMP/client.ini"
    MESHIM_CONFIG=$TMP/spawn.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$sp" "$how" "$SERVER" \
        > "$TMP/spawn-$how.out" 2> "$TMP/spawn-$how.err" <<'PY' &
import os, socket, sys
ls = socket.socket()
ls.bind(("127.0.0.2", int(sys.argv[1])))
ls.listen(16)
if sys.argv[2] == "inherit":
    os.set_inheritable(ls.fileno(), True)
    fd, actions = ls.fileno(), ()
else:
    fd, actions = 3, [(os.POSIX_SPAWN_DUP2, ls.fileno(), 3)]
pid = os.posix_spawn(sys.executable, [sys.executable, sys.argv[3], str(fd)], {}, file_actions=actions)
print(pid, flush=True)
os.waitpid(pid, 0)
PY
    PIDS+=($!)
    wait_until "[ -s '$TMP/spawn-$how.out' ]" || fail "posix_spawn ($how): no child: $(cat "$TMP/spawn-$how.err")"
    child=$(cat "$TMP/spawn-$how.out")
    PIDS+=("$child")
    out=$(meshed_get pyspawn "$sp")
    [ "$out" = "200 served over mTLS" ] || fail "posix_spawn ($how): '$out' $(cat "$TMP/client.err" "$TMP/spawn-$how.err")"
    maps_shim "$child" || fail "posix_spawn ($how): the child runs without the shim"
    out=$(plain_gets 127.0.0.2 "$sp")
    case $out in *"served over"*|*HTTP/1.0*) fail "posix_spawn ($how): the child served a plaintext client: $out" ;; esac
    grep -q "posix_spawn of .*python.*inherits the listener of \[inbound:$sp\], so it gets the mesh" \
        "$TMP/spawn-$how.err" || fail "posix_spawn ($how): no line: $(cat "$TMP/spawn-$how.err")"
    ok "python3's posix_spawn with an empty environment, the listener handed on by $how: mTLS served, plaintext refused"
done

# --- any listening socket: a server re-exec'ing itself stays meshed ----------
# A listener on a port with no [inbound] section (the new image is the same
# server going on): the exec'd python3 reaches a service by its name, which
# only the mesh resolves.
lp=$(free_port)
tls_ini "$TMP/plainsrv.ini" web "[service:backend]" "endpoints = 127.0.0.3:$bp"
out=$(MESHIM_CONFIG=$TMP/plainsrv.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$lp" "$bp" 2> "$TMP/plainsrv.err" <<'PY'
import os, socket, sys
ls = socket.socket()
ls.bind(("127.0.0.2", int(sys.argv[1])))
ls.listen(16)
os.set_inheritable(ls.fileno(), True)
child = r'''
import http.client, sys
c = http.client.HTTPConnection("backend", int(sys.argv[1]), timeout=20)
c.request("GET", "/after-exec")
print(c.getresponse().read().decode().strip())
'''
os.execve(sys.executable, [sys.executable, "-c", child, sys.argv[2]], {})
PY
)
case $out in "backend GET /after-exec "*) ;; *) fail "python3 exec'd with a plain listener: '$out' $(cat "$TMP/plainsrv.err")" ;; esac
grep -q "inherits a listening socket (port $lp), so it gets the mesh" "$TMP/plainsrv.err" ||
    fail "no line on the exec: $(cat "$TMP/plainsrv.err")"
ok "python3 exec'd with an empty environment and a plain listener: it reaches a service by name"
