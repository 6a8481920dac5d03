# The command: doctor tells reachable programs from those LD_PRELOAD cannot
# reach; an installed tree (make install DESTDIR=...) finds its library.
. "$(dirname "$0")/lib.sh"

out=$(meshim doctor python3) || fail "doctor python3: $out"
echo "$out" | grep -q "verdict:  reachable" || fail "doctor python3: $out"
ok "doctor: a dynamically linked program is reachable"

printf 'int main(void) { return 0; }\n' > "$TMP/s.c"
cc -static -o "$TMP/static-prog" "$TMP/s.c" || fail "cannot build a static test program"
out=$(meshim doctor "$TMP/static-prog"); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "a static binary" || fail "doctor static: rc=$rc $out"
ok "doctor: a static binary is called unreachable"

cc -o "$TMP/suid-prog" "$TMP/s.c" && chmod u+s "$TMP/suid-prog"
out=$(meshim doctor "$TMP/suid-prog"); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "set-uid" || fail "doctor set-uid: rc=$rc $out"
ok "doctor: a set-uid program is called unreachable"

# musl (Alpine): the glibc library would stop the program at start, so
# doctor says so and `meshim PROGRAM` does not start it.
command -v musl-gcc > /dev/null || fail "needs musl-gcc (musl-tools)"
printf '#include <stdio.h>\nint main(void) { puts("musl ran"); return 0; }\n' > "$TMP/m.c"
musl-gcc -o "$TMP/musl-prog" "$TMP/m.c" || fail "cannot build a musl test program"
[ "$("$TMP/musl-prog")" = "musl ran" ] || fail "the musl program does not run by itself"
out=$(meshim doctor "$TMP/musl-prog"); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "musl" || fail "doctor musl: rc=$rc $out"
out=$(meshim "$TMP/musl-prog" 2>&1); rc=$?
[ $rc -eq 126 ] && echo "$out" | grep -q "linked against musl" && ! echo "$out" | grep -q "musl ran" ||
    fail "meshim on a musl program: rc=$rc $out"
ok "musl: doctor says so, and meshim PROGRAM refuses to start it with the reason"

out=$(meshim doctor /etc/hostname 2>&1); rc=$?
[ $rc -ne 0 ] || fail "doctor on a non-program succeeded: $out"
ok "doctor: a file that is not a program is refused"

# meshim PROGRAM with no config says so, once; the program still runs.
if [ ! -e /etc/meshim/meshim.ini ]; then
    out=$(meshim sh -c 'echo ran' 2>&1)
    [ "$out" = "meshim: no config (-c FILE, MESHIM_CONFIG, /etc/meshim/meshim.ini or MESHIM_SERVICES): sh runs outside the mesh
ran" ] || fail "meshim PROGRAM without a config: '$out'"
    out=$(MESHIM_DISABLE=1 meshim sh -c 'echo ran' 2>&1)
    [ "$out" = ran ] || fail "meshim PROGRAM with MESHIM_DISABLE=1 is not quiet: '$out'"
    out=$(MESHIM_SERVICES=orders=127.0.0.2:80 meshim sh -c 'echo ran' 2>&1)
    [ "$out" = ran ] || fail "meshim PROGRAM with MESHIM_SERVICES is not quiet: '$out'"
    ok "meshim PROGRAM without a config says the program runs outside the mesh (quiet with one, or disabled)"
fi

# make install into a scratch tree, then run the installed command.
make -s -C "$ROOT" install BUILD="$BUILD" PREFIX=/opt/meshim DESTDIR="$TMP/root" >/dev/null \
    || fail "make install"
for f in lib/meshim/libmeshim.so bin/meshim share/meshim/meshim.ini.example share/doc/meshim/README.md; do
    [ -f "$TMP/root/opt/meshim/$f" ] || fail "make install did not install $f"
done
out=$(env LD_PRELOAD="$MESHIM_CMD_PRELOAD" MESHIM_SERVICES=orders=127.0.0.2:80 \
      "$TMP/root/opt/meshim/bin/meshim" getent hosts orders) || fail "installed meshim: $out"
case "$out" in 127.77.*orders*) ;; *) fail "installed meshim did not mesh: $out" ;; esac
ok "make install: the installed command finds ../lib/meshim/libmeshim.so"

# What the library exports: the hooks and meshim_*, nothing else.
extra=$(nm -D --defined-only "$MESHIM_LIB" | awk '{print $3}' | grep -v '^meshim_' \
        | grep -vxF -f <(cc -E -P -x c -Ishim shim/hook/exports.map.in | tr -d ' ;' | grep -v '[{}:*]') || true)
[ -z "$extra" ] || fail "libmeshim.so exports more than its hooks: $extra"
ok "libmeshim.so exports only the hooks of hooks.def"

# An argument a command does not take is shown before the usage.
out=$(meshim stats --bogus 2>&1); rc=$?
[ $rc -eq 2 ] && [ "$(echo "$out" | head -1)" = "meshim stats: --bogus: not an argument it takes" ] &&
    echo "$out" | grep -q "^usage: meshim" || fail "meshim stats --bogus: rc=$rc $out"
out=$(meshim exporter --listen 2>&1); rc=$?
[ $rc -eq 2 ] && [ "$(echo "$out" | head -1)" = "meshim exporter: --listen needs a value" ] ||
    fail "meshim exporter --listen: rc=$rc $out"
ok "a bad argument is shown: '$(meshim stats --bogus 2>&1 | head -1)'"
