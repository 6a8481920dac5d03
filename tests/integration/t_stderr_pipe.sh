#!/usr/bin/env bash
# A program whose stderr is a pipe that has lost its reader (a log shipper
# that died, `prog 2>&1 | head -1` once head is done) and that never
# writes to stderr itself must not die of the shim's lines: the SIGPIPE a
# write to such a pipe raises in the writing thread killed perl at its
# first refused connect (the shim's warning), where it would have printed
# "down" and gone on.
. "$(dirname "$0")/lib.sh"
port=$(free_port)      # nothing listens: the connect is refused, with a warning
printf '[service:nobody-home]\nendpoints = 127.0.0.2:%s\nretries = 0\n' "$port" > "$TMP/mesh.ini"
MESHIM_CONFIG=$TMP/mesh.ini python3 - "$MESHIM_PRELOAD" "$port" > "$TMP/out" 2> "$TMP/err" <<'PY' ||
import os, subprocess, sys
preload, port = sys.argv[1], sys.argv[2]
r, w = os.pipe()
os.close(r)                 # the reader is gone before anything is written
perl = ["perl", "-MIO::Socket::INET", "-e",
        "my $s = IO::Socket::INET->new(PeerAddr => 'nobody-home:%s', Timeout => 5);"
        "print STDOUT ($s ? qq(up\\n) : qq(down\\n));" % port]
# SIGPIPE at its default, as a program started by a shell has it (python
# ignores it; restore_signals gives the child the default back).
p = subprocess.run(perl, env=dict(os.environ, LD_PRELOAD=preload), stdout=subprocess.PIPE, stderr=w,
                   restore_signals=True, timeout=30)
print(p.returncode, p.stdout.decode().strip())
PY
    fail "the check itself failed: $(cat "$TMP/err")"
[ "$(cat "$TMP/out")" = "0 down" ] ||
    fail "perl with a reader-less stderr pipe: '$(cat "$TMP/out")' (-13: killed by SIGPIPE), not '0 down'"
ok "perl with a stderr pipe nobody reads: its refused connect is logged into the pipe, and perl goes on"
