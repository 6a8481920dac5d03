# Companion connections: FTP by service name. lftp → three vsftpd backends
# behind one VIP, passive data connections both ways (EPSV, and PASV whose
# address lftp replaces with the control connection's peer: the VIP), so
# every data connection is a new connect to VIP:port that must reach the
# backend holding the session.
# - affinity = process sends every connection of one process to the
#   endpoint its first one reached; retries = 0, so a lucky retry cannot
#   stand in for it (without affinity two data connections in three go to a
#   backend with nothing on that port, or to another client's session);
# - FTP's server speaks first on both its connections (the greeting, the
#   file), so on a permissive port a plaintext client sends nothing for
#   the shim to tell it by: after detect_timeout it is served as plaintext
#   (it was refused after 3 s: "no byte from the client"), and an mTLS
#   client on the same ports still gets TLS;
# - plain, then over mTLS with the shim at both ends (data ports strict
#   too): vsftpd accepts a data connection only after RETR, which lftp sends
#   only once its connect is done, so the handshake cannot finish inside
#   connect(); with late_accept = on the connect is reported when the
#   server stays silent and the relay finishes the handshake after the
#   accept (without it, and with no other endpoint to retry on, the same
#   happens once connect_timeout is up);
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/integration/certs.sh"
shims lftp

C=$TMP/pki
make_certs "$C" || fail "cannot make the test certificates"
chmod o+rx "$TMP"
dmin=$(( 20000 + $(free_port) % 20000 ))    # five data ports per backend
mkdir -p "$TMP/empty"

# start_ftp MODE: three vsftpd (plain, or under the shim with every port
# strict (mtls) or permissive) on a fresh control port $fp (not the last mode's: its listeners
# may still be going away).
start_ftp() {
    local mode=$1 i q
    fp=$(free_port)
    if [ "$mode" = mtls ]; then
        tls_ini "$TMP/ftpd.ini" orders "[inbound:$fp]" "tls = strict"
        for q in $(seq "$dmin" $((dmin + 4))); do printf '[inbound:%s]\ntls = strict\n' "$q" >> "$TMP/ftpd.ini"; done
    elif [ "$mode" = permissive ]; then
        tls_ini "$TMP/ftpd.ini" orders
        for q in "$fp" $(seq "$dmin" $((dmin + 4))); do
            printf '[inbound:%s]\ntls = permissive\ndetect_timeout = 300ms\n' "$q" >> "$TMP/ftpd.ini"
        done
    fi
    for i in 2 3 4; do
        mkdir -p "$TMP/ftp$i"
        echo "backend-$i" > "$TMP/ftp$i/who"
        cat > "$TMP/vsftpd$i.conf" <<CONF
listen=YES
listen_address=127.0.0.$i
listen_port=$fp
background=NO
anonymous_enable=YES
local_enable=NO
anon_root=$TMP/ftp$i
no_anon_password=YES
ftp_username=ftp
secure_chroot_dir=$TMP/empty
pasv_enable=YES
pasv_min_port=$dmin
pasv_max_port=$((dmin + 4))
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
xferlog_enable=NO
CONF
        if [ "$mode" != plain ]; then
            env LD_PRELOAD="$MESHIM_PRELOAD" MESHIM_CONFIG="$TMP/ftpd.ini" vsftpd "$TMP/vsftpd$i.conf" \
                > "$TMP/vsftpd$i.log" 2>&1 &
        else
            vsftpd "$TMP/vsftpd$i.conf" > "$TMP/vsftpd$i.log" 2>&1 &
        fi
        FTPD_PIDS+=($!)
        PIDS+=($!)
    done
    for i in 2 3 4; do wait_port "127.0.0.$i" "$fp"; done
}
stop_ftp() {
    local p
    for p in "${FTPD_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    FTPD_PIDS=()
}

# client_ini FILE MODE [KEY=VALUE...]
client_ini() {
    local file=$1 mode=$2
    shift 2
    if [ "$mode" = mtls ]; then tls_ini "$file" web; else printf '[meshim]\n' > "$file"; fi
    printf '[service:files]\nendpoints = 127.0.0.2, 127.0.0.3, 127.0.0.4\nretries = 0\n' >> "$file"
    [ "$mode" = mtls ] && printf 'tls = mtls\n' >> "$file"
    printf '%s\n' "$@" >> "$file"
}

# lftp_runs INI N: N lftp processes, each fetching `who` four times (EPSV
# twice, then PASV twice); one line per process. A transfer that failed is
# tried again after 1 s (lftp's reconnect interval, 30 s by default).
lftp_runs() {
    local ini=$1 n=$2 k
    for k in $(seq 1 "$n"); do
        MESHIM_CONFIG=$ini timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" lftp -e "set net:max-retries 1; set net:timeout 5; set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; set ftp:prefer-epsv yes; cat who; cat who; set ftp:prefer-epsv no; cat who; cat who; bye" "ftp://files:$fp" \
            2>> "$TMP/lftp.err" | tr '\n' ' '
        echo
    done
}

# check_runs FILE WHAT: every line is one backend four times.
check_runs() {
    local file=$1 what=$2 line
    while read -r line; do
        set -- $line
        [ $# = 4 ] && [ "$1" = "$2" ] && [ "$1" = "$3" ] && [ "$1" = "$4" ] \
            || fail "$what: a process's four transfers were '$line' (want one backend four times); $(tail -3 "$TMP/lftp.err")"
    done < "$file"
    ok "$what: $(wc -l < "$file") processes x 4 transfers, each process on one backend: $(awk '{print $1}' "$file" | sort | uniq -c | tr -s ' \n' ' ')"
}

FTPD_PIDS=()
# --- plain ------------------------------------------------------------------
start_ftp plain
client_ini "$TMP/plain.ini" plain "affinity = process"
lftp_runs "$TMP/plain.ini" 5 > "$TMP/plain.out"
check_runs "$TMP/plain.out" "lftp → vsftpd by name, plain, affinity = process"
# Without affinity, the same connects go astray. Their refused data
# connections stay in these processes (shared_state = off): in the host's
# table they would eject the backends' data ports, and the mTLS stage's
# processes, on the same addresses and ports, would then be sent away from
# their session's backend (one run in many: 'backend-4 backend-3 ...').
client_ini "$TMP/noaff.ini" plain
sed -i 's/^\[meshim\]$/&\nshared_state = off/' "$TMP/noaff.ini"
lftp_runs "$TMP/noaff.ini" 5 > "$TMP/noaff.out"
good=$(awk 'NF == 4 && $1 == $2 && $1 == $3 && $1 == $4' "$TMP/noaff.out" | wc -l)
[ "$good" -lt 5 ] || fail "without affinity every process still kept its backend: the test does not test affinity"
ok "without affinity (retries = 0): $((5 - good)) of 5 processes lost a transfer"
stop_ftp

# --- mTLS -------------------------------------------------------------------
start_ftp mtls
client_ini "$TMP/mtls.ini" mtls "affinity = process" "late_accept = on"
lftp_runs "$TMP/mtls.ini" 5 > "$TMP/mtls.out"
check_runs "$TMP/mtls.out" "lftp → vsftpd by name, mTLS (control and data connections), affinity = process, late_accept = on"

# Without late_accept the data connection's handshake waits for an accept
# that waits for it until connect_timeout; with retries = 0 no other
# endpoint may take it, so the connect is then reported as a server that has
# not accepted yet (mtls.h), and the transfer goes on, connect_timeout late.
client_ini "$TMP/early.ini" mtls "affinity = process" "connect_timeout = 500ms"
MESHIM_CONFIG=$TMP/early.ini timeout 60 env LD_PRELOAD="$MESHIM_PRELOAD" lftp -e "set net:max-retries 1; set net:timeout 5; set net:reconnect-interval-base 1; set net:reconnect-interval-multiplier 1; set ftp:prefer-epsv yes; cat who; bye" "ftp://files:$fp" \
    > "$TMP/early.out" 2> "$TMP/early.err" || fail "without late_accept: $(cat "$TMP/early.out" "$TMP/early.err")"
grep -q "^backend-" "$TMP/early.out" || fail "without late_accept: no file: $(cat "$TMP/early.out")"
grep -q "has not accepted the connection after connect_timeout and no other endpoint is left" "$TMP/early.err" ||
    fail "without late_accept: the data connection did not wait for its connect_timeout: $(cat "$TMP/early.err")"
ok "without late_accept (retries = 0): the data connection is reported at its connect_timeout, and the transfer works"
stop_ftp

# --- permissive: plaintext clients of a server-first protocol -----------------
start_ftp permissive
meshim check -c "$TMP/ftpd.ini" 2>&1 | grep -q "detect     a silent client is plaintext 300 ms after the server spoke" ||
    fail "meshim check does not say how a permissive port takes a silent client: $(meshim check -c "$TMP/ftpd.ini" 2>&1 | tail -4)"
out=$(timeout 60 lftp -e "set net:max-retries 1; set net:timeout 10; set ftp:prefer-epsv yes; cat who; set ftp:prefer-epsv no; cat who; bye" \
    "ftp://127.0.0.2:$fp" 2> "$TMP/plainftp.err" | tr '\n' ' ')
[ "$out" = "backend-2 backend-2 " ] ||
    fail "a plaintext lftp to a permissive vsftpd (control and data connections silent until the server speaks): '$out'; $(cat "$TMP/plainftp.err"; grep -h meshim "$TMP"/vsftpd*.log | tail -3)"
! grep -h "refused" "$TMP"/vsftpd*.log || fail "a permissive port refused a client"
ok "permissive ports: a plaintext FTP client (server speaks first) is served after detect_timeout: $out"
lftp_runs "$TMP/mtls.ini" 2 > "$TMP/perm-mtls.out"
check_runs "$TMP/perm-mtls.out" "the same permissive ports: lftp over mTLS (TLS told by its first byte)"
