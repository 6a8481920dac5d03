# make deb's package installed and removed in the Debian 11 root (glibc
# 2.31; tests/deploy/mkroot), with dpkg in a chroot of its own mount
# namespace: it installs cleanly, `meshim --version` names this build's
# commit, the man pages are there, the installed command finds the
# installed library and meshes an unmodified curl, the library opens the
# TLS module installed beside it for python3's mTLS call, and `dpkg -r` leaves
# nothing behind.
. "$(dirname "$0")/lib.sh"
deb=$(ls "$BUILD"/meshim_*.deb 2> /dev/null | head -n 1)
[ -n "$deb" ] || fail "no package in $BUILD (make deb)"

inside() { in_root "$@"; }   # nothing preloaded
P=/tmp/meshim-deb-pki.$$          # in the root: the client's identity
trap 'inside dpkg -r meshim > /dev/null 2>&1; rm -rf "$R/tmp/meshim.deb" "$R$P"; cleanup' EXIT
cp "$deb" "$R/tmp/meshim.deb"

inside dpkg -i /tmp/meshim.deb > "$TMP/install.log" 2>&1 || fail "dpkg -i: $(tail -5 "$TMP/install.log")"
[ "$(inside dpkg-query -W -f='${db:Status-Abbrev}' meshim)" = "ii " ] || fail "not installed after dpkg -i"
ok "dpkg -i $(basename "$deb") in bullseye: installed"

version=$(inside meshim --version) || fail "meshim --version"
[ "$version" = "meshim $(sed -n 's/^VERSION *:= *//p' "$ROOT/Makefile") (commit $(cat "$BUILD/commit"))" ] ||
    fail "meshim --version: \"$version\" (build $(cat "$BUILD/commit"))"
module=/usr/lib/meshim/libmeshim-tls-$(module_id "$BUILD").so
for f in /usr/lib/meshim/libmeshim.so $module /usr/share/doc/meshim/examples/meshim.ini /usr/share/doc/meshim/copyright; do
    [ -f "$R$f" ] || fail "$f is not installed"
done
zcat "$R/usr/share/man/man1/meshim.1.gz" | grep -q '^\.TH MESHIM 1' || fail "no meshim(1)"
zcat "$R/usr/share/man/man5/meshim.ini.5.gz" | grep -q '^\.TH MESHIM.INI 5' || fail "no meshim.ini(5)"
ok "installed: $version, the library in /usr/lib/meshim, meshim(1) and meshim.ini(5)"

C=$TMP/pki
make_certs "$C" > /dev/null || fail "cannot make the test certificates"
start_backends
out=$(inside env MESHIM_SERVICES="web=127.0.0.3:$port" meshim curl -sS --max-time 20 "http://web:$port/" 2> "$TMP/err") ||
    fail "the installed meshim running curl: $(cat "$TMP/err")"
[ "$out" = "hello from the backend" ] || fail "curl got: $out"
ok "the installed command found the installed library: curl reached web by name"

mkdir -p "$R$P"
cp "$C/web.pem" "$C/web.key" "$C/ca.pem" "$R$P/"
C=$P tls_ini "$R$P/web.ini" web "$(backend_services)"   # the identity's paths as the root sees them
out=$(inside env MESHIM_CONFIG="$P/web.ini" meshim python3 -c "
import urllib.request
print(urllib.request.urlopen('http://secure:$tport/', timeout=20).read().decode().strip())
print(' '.join(sorted({l.split(None, 5)[5].strip() for l in open('/proc/self/maps') if 'tls' in l})))" 2> "$TMP/err") ||
    fail "python3 over mTLS with the installed library: $(tail -3 "$TMP/err")"
[ "$out" = "hello from the backend
$module" ] || fail "python3 over mTLS printed: $out"
ok "over mTLS the installed library opens its TLS module from beside it ($module)"

inside dpkg -r meshim > "$TMP/remove.log" 2>&1 || fail "dpkg -r: $(tail -5 "$TMP/remove.log")"
left=$(inside dpkg-query -W -f='${db:Status-Abbrev}' meshim 2> /dev/null || true)
case $left in ""|"un ") ;; *) fail "after dpkg -r the package is \"$left\"" ;; esac
for f in /usr/lib/meshim /usr/bin/meshim /usr/share/doc/meshim /usr/share/man/man1/meshim.1.gz; do
    [ ! -e "$R$f" ] || fail "$f is left after dpkg -r"
done
ok "dpkg -r: nothing left"
