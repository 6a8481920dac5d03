#!/usr/bin/env bash
# A program that takes its number format from the environment (wget calls
# setlocale(LC_ALL, "")) under a locale whose decimal point is a comma
# (de_DE.UTF-8, made here with localedef into the test's folder: LOCPATH):
#   - its access-log lines, connection and request alike, stay JSON: printf's
#     %f wrote "connect_ms":165,750;
#   - a config reload in such a program reads "12.5%": strtod stopped at the
#     point and the reload was refused ("not a share");
# and one whose upper-case I has no one-byte lower case (tr_TR.UTF-8, which
# python3 takes its LC_CTYPE from): "INVENTORY" and "Inventory" are still
# the service inventory (tolower('I') is 'I' there, and they were not
# meshed: "Name or service not known").
. "$(dirname "$0")/lib.sh"
command -v localedef >/dev/null && [ -d /usr/share/i18n/locales ] ||
    fail "no locale definitions to build de_DE.UTF-8 from (apt-get install locales)"
mkdir -p "$TMP/locale"
for l in de_DE tr_TR; do
    localedef -i $l -f UTF-8 "$TMP/locale/$l.UTF-8" 2> "$TMP/localedef.err" ||
        fail "localedef $l failed: $(cat "$TMP/localedef.err")"
done
export LOCPATH=$TMP/locale
# The premise: in this locale a program's %f writes a comma.
[ "$(LC_ALL=de_DE.UTF-8 python3 -c 'import locale; locale.setlocale(locale.LC_ALL, ""); print(locale.format_string("%.1f", 1.5))')" = "1,5" ] ||
    fail "de_DE.UTF-8 from $LOCPATH does not write 1,5"

port=$(free_port)
start_backends "$port"
cat > "$TMP/mesh.ini" <<EOF
[meshim]
log_level = info
access_log = $TMP/access.log
[tls]
reload_interval = 200ms
[service:orders]
endpoints = 127.0.0.2:$port
[service:orders-http]
endpoints = 127.0.0.3:$port
protocol = http
EOF
for name in orders orders-http; do
    LC_ALL=de_DE.UTF-8 MESHIM_CONFIG=$TMP/mesh.ini LD_PRELOAD="$MESHIM_PRELOAD" \
        wget -q -O "$TMP/$name.out" "http://$name:$port/who" 2>> "$TMP/wget.err" ||
        fail "wget $name failed: $(cat "$TMP/wget.err")"
done
wait_until "[ \$(grep -c . $TMP/access.log 2>/dev/null) -ge 3 ]" ||
    fail "fewer than 3 access-log lines: $(cat "$TMP/access.log" 2>/dev/null)"
python3 - "$TMP/access.log" <<'PY' || fail "an access-log line is not JSON: $(cat "$TMP/access.log")"
import json, sys
kinds = set()
for line in open(sys.argv[1]):
    r = json.loads(line)
    assert isinstance(r["duration_ms"], (int, float)), r
    kinds.add(r.get("kind", "connection"))
    if "connect_ms" in r and r["connect_ms"] is not None:
        assert isinstance(r["connect_ms"], (int, float)), r
assert kinds == {"connection", "request"}, kinds
PY
ok "wget under de_DE.UTF-8: its connection and request lines are JSON, milliseconds with a point"

# A program that sets its locale, then a reload with a decimal share.
LC_ALL=de_DE.UTF-8 MESHIM_CONFIG=$TMP/mesh.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" "$TMP/stop" \
    > "$TMP/app.out" 2> "$TMP/app.err" <<'PY' &
import locale, os, socket, sys, time
locale.setlocale(locale.LC_ALL, "")
assert locale.localeconv()["decimal_point"] == ",", locale.localeconv()
socket.create_connection(("orders", int(sys.argv[1])), timeout=10).close()
print("connected", flush=True)
deadline = time.time() + 60
while not os.path.exists(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.1)
PY
PIDS+=($!)
wait_until "grep -q connected $TMP/app.out" || fail "the program never connected: $(cat "$TMP/app.err")"
sed -i 's/^\[service:orders\]$/&\nretry_budget = 12.5%/' "$TMP/mesh.ini"
wait_until "grep -q 'reloaded, 2 services' $TMP/app.err || grep -q 'retry_budget' $TMP/app.err" ||
    fail "no reload seen: $(cat "$TMP/app.err")"
touch "$TMP/stop"
grep -q 'reloaded, 2 services' "$TMP/app.err" && ! grep -q 'not a share' "$TMP/app.err" ||
    fail "the reload under de_DE.UTF-8 did not take retry_budget = 12.5%: $(cat "$TMP/app.err")"
ok "a program that set de_DE.UTF-8 reloads a config with retry_budget = 12.5%"

# Names in upper case under tr_TR.UTF-8.
printf '[service:inventory]\nendpoints = 127.0.0.2:%s\n' "$port" > "$TMP/inventory.ini"
LC_ALL=tr_TR.UTF-8 MESHIM_CONFIG=$TMP/inventory.ini LD_PRELOAD="$MESHIM_PRELOAD" python3 - "$port" \
    > "$TMP/tr.out" 2>&1 <<'PY' || fail "upper-case names under tr_TR.UTF-8: $(cat "$TMP/tr.out")"
import locale, sys, urllib.request
assert locale.setlocale(locale.LC_CTYPE) == "tr_TR.UTF-8", locale.setlocale(locale.LC_CTYPE)
for host in ("inventory", "Inventory", "INVENTORY"):
    body = urllib.request.urlopen("http://%s:%s/who" % (host, sys.argv[1]), timeout=10).read()
    assert body.strip() == b"backend-2", (host, body)
PY
ok "python3 under tr_TR.UTF-8: inventory, Inventory and INVENTORY are the service inventory"

