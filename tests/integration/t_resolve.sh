# Service names resolve to the same VIP in every process and through every
# resolver call; other names resolve exactly as without the shim.
. "$(dirname "$0")/lib.sh"

export MESHIM_SERVICES='orders=127.0.0.2:80'
cat > "$TMP/mesh.ini" <<INI
[service:orders]
hosts = orders, orders.prod.svc.cluster.local, *.orders.svc
endpoints = 127.0.0.2:80
INI
export MESHIM_CONFIG=$TMP/mesh.ini
unset MESHIM_SERVICES

vip=$(meshim check | awk '$1 == "vip" {print $2; exit}')
case "$vip" in 127.77.*) ;; *) fail "meshim check gave no VIP: '$vip'" ;; esac

got=$(shimmed getent hosts orders | awk '{print $1}')
[ "$got" = "$vip" ] || fail "getent hosts orders: '$got', meshim check says $vip"
got=$(shimmed getent ahostsv4 ORDERS.prod.svc.cluster.local. | awk 'NR==1 {print $1}')
[ "$got" = "$vip" ] || fail "alias host, other case, trailing dot: '$got'"
got=$(shimmed getent hosts eu-west.orders.svc | awk '{print $1}')
[ "$got" = "$vip" ] || fail "*.orders.svc host: '$got'"
ok "getent: orders and its hosts resolve to $vip"

shimmed python3 - "$vip" <<'PY' || fail "python resolver calls"
import socket, sys
vip = sys.argv[1]
assert socket.gethostbyname("orders") == vip
name, aliases, addrs = socket.gethostbyname_ex("orders")
assert addrs == [vip], addrs
six = socket.getaddrinfo("orders", 80, socket.AF_INET6, socket.SOCK_STREAM)
assert six[0][4][0] == "::ffff:" + vip, six
four = socket.getaddrinfo("orders", 80, 0, socket.SOCK_STREAM)
assert [a[4][0] for a in four] == [vip], four
canon = socket.getaddrinfo("orders", 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
assert canon[0][3] == "orders", canon
assert socket.gethostbyaddr(vip)[0] == "orders"
assert socket.getnameinfo((vip, 80), 0) == ("orders", "http")
assert socket.getnameinfo((vip, 80), socket.NI_NUMERICHOST)[0] == vip
print("python ok")
PY
ok "python: gethostbyname, getaddrinfo (v4, v6 mapped, canonname), gethostbyaddr, getnameinfo"

# Names the mesh does not know: identical answers, identical failures.
for name in localhost ip6-localhost 127.0.0.1; do
    a=$(getent ahosts "$name"; echo "rc=$?")
    b=$(shimmed getent ahosts "$name"; echo "rc=$?")
    [ "$a" = "$b" ] || fail "getent ahosts $name differs under the shim: '$a' vs '$b'"
done
a=$(getent hosts no-such-host.invalid; echo "rc=$?")
b=$(shimmed getent hosts no-such-host.invalid; echo "rc=$?")
[ "$a" = "$b" ] || fail "unknown name differs: '$a' vs '$b'"
ok "unconfigured names resolve as without the shim"

out=$(MESHIM_DISABLE=1 shimmed getent hosts orders; echo "rc=$?")
[ "$out" = "rc=2" ] || fail "MESHIM_DISABLE=1 still resolves orders: $out"
ok "MESHIM_DISABLE=1 makes the shim inert"

# A config file in the working directory is never read.
mkdir -p "$TMP/cwd"
cp "$TMP/mesh.ini" "$TMP/cwd/meshim.ini"
out=$(cd "$TMP/cwd" && env -u MESHIM_CONFIG LD_PRELOAD="$MESHIM_PRELOAD" getent hosts orders; echo "rc=$?")
[ "$out" = "rc=2" ] || fail "a meshim.ini in the working directory was used: $out"
ok "no config read from the working directory"

# A program that comes by the VIP another way (a DNS client of its own, its
# hosts file or config: README's Limits) reaches the service with it.
port=$(free_port)
start_backend 2 "$port"
wait_port 127.0.0.2 "$port"
printf '[service:orders]\nendpoints = 127.0.0.2\n' > "$TMP/vip.ini"
vip2=$(MESHIM_CONFIG=$TMP/vip.ini meshim check | awk '$1 == "vip" {print $2; exit}')
[ "$vip2" = "$vip" ] || fail "the VIP of orders differs between two configs: $vip2, $vip"
got=$(MESHIM_CONFIG=$TMP/vip.ini shimmed python3 -c "
import sys, urllib.request
print(urllib.request.urlopen('http://$vip2:$port/who', timeout=10).read().decode().strip())")
[ "$got" = backend-2 ] || fail "python3 to the VIP $vip2, not resolved: '$got'"
ok "python3 urlopen('http://$vip2:PORT/who') (the VIP given as an address, never resolved): the service answered"

# AI_NUMERICHOST asks whether a string is an address written out: a service
# name is not one, as without the shim. ssh asks so first, and took the
# name for an address: it canonicalised "orders" to the VIP, whose host key
# it then checked and recorded under the VIP.
out=$(MESHIM_CONFIG=$TMP/vip.ini shimmed python3 -c "
import socket
try: print(socket.getaddrinfo('orders', 80, flags=socket.AI_NUMERICHOST))
except socket.gaierror as e: print('gaierror', e.errno)" 2>&1)
[ "$out" = "gaierror $(python3 -c 'import socket; print(socket.EAI_NONAME)')" ] ||
    fail "getaddrinfo(orders, AI_NUMERICHOST): '$out' (want EAI_NONAME, as without the shim)"
out=$(MESHIM_CONFIG=$TMP/vip.ini shimmed timeout 20 ssh -F /dev/null -v -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile=/dev/null -p "$port" orders true 2>&1)
echo "$out" | grep -q "Connecting to orders \[$vip\] port $port" ||
    fail "ssh did not keep the name orders: $(echo "$out" | grep -i 'connecting\|canonical' | head -3)"
ok "getaddrinfo with AI_NUMERICHOST: a service name is no address (EAI_NONAME); ssh keeps the name orders (was canonicalised to $vip)"

# glibc's asynchronous look-ups, getaddrinfo_a (vibe.d's and OpenThread's
# resolvers): glibc answers them on threads of its own whose getaddrinfo is
# bound inside the C library, so the shim answers the service names in the
# list itself. One call with a service and a name of the system's, in each
# way a program learns the answers are in; then a list of service names
# alone, whose notification only the shim can give.
for mode in wait thread signal poll; do
    out=$(MESHIM_CONFIG=$TMP/vip.ini shimmed timeout 30 "$ROOT/$BUILD/tests/gaia" "$mode" orders localhost 2>&1)
    echo "$out" | grep -qx "orders $vip" || fail "getaddrinfo_a ($mode): orders: $out"
    echo "$out" | grep -Eqx "localhost (127\.0\.0\.1|::1)" || fail "getaddrinfo_a ($mode): localhost: $out"
done
for mode in thread signal; do
    out=$(MESHIM_CONFIG=$TMP/mesh.ini shimmed timeout 30 "$ROOT/$BUILD/tests/gaia" "$mode" orders orders.prod.svc.cluster.local 2>&1)
    [ "$(echo "$out" | grep -cx "orders[.a-z]* $vip")" = 2 ] || fail "getaddrinfo_a ($mode), service names only: $out"
done
ok "getaddrinfo_a: orders is $vip beside localhost (GAI_WAIT, a thread, a signal, gai_suspend); a list of service names alone is notified"
