# Sourced by the test scripts: what to put in LD_PRELOAD for $BUILD.
# A library built with ASan needs the ASan runtime loaded before anything
# else in an uninstrumented program, so it goes first.
BUILD=${BUILD:-build}
MESHIM_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/$BUILD/libmeshim.so
MESHIM_PRELOAD=$MESHIM_LIB
asan_rt=$(ldd "$MESHIM_LIB" 2>/dev/null | awk '/libasan/ {print $3}')
if [ -n "$asan_rt" ]; then
    MESHIM_PRELOAD="$asan_rt $MESHIM_LIB"
    # Leaks of the programs under test are theirs, not ours to report.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
fi
# What the command itself needs preloaded (the ASan runtime, or nothing).
MESHIM_CMD_PRELOAD=${asan_rt:-}
export MESHIM_LIB MESHIM_PRELOAD MESHIM_CMD_PRELOAD
