#!/bin/sh
# kioku's one entry point for a fresh Debian 12 machine (run as root, or with
# sudo available): installs what is missing, builds, then
#   ./build.sh run [kioku options]   runs kioku in the foreground
#   ./build.sh test                  runs the whole test suite: the normal
#                                    build, ASan+UBSan, TSan, and distcheck
# Builds go to build/, build-asan/ and build-tsan/; the source tree stays clean.
set -eu

cd "$(dirname "$0")"
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

run_deps="build-essential autoconf automake pkg-config libevent-dev libxxhash-dev"
test_deps="check libmemcached-dev libmemcached-tools libhiredis-dev redis-tools \
python3 python3-redis python3-pymemcache netcat-openbsd"

install_missing() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing="$missing $p"
    done
    [ -z "$missing" ] && return 0
    echo "== installing:$missing"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing
}

# configure into DIR with extra configure arguments, then build.
build_in() {
    dir=$1; shift
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
        autoreconf -fi
    fi
    mkdir -p "$dir"
    (cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; } && make -s -j"$jobs")
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
    install_missing $run_deps
    build_in build
    exec build/src/kioku "$@"
    ;;
test)
    install_missing $run_deps $test_deps
    echo "== build and test"
    build_in build
    make -C build -j"$jobs" check
    echo "== AddressSanitizer + UndefinedBehaviorSanitizer: every test"
    build_in build-asan --enable-sanitizer=address
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        make -C build-asan -j"$jobs" check
    echo "== ThreadSanitizer: the concurrent tests"
    build_in build-tsan --enable-sanitizer=thread
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        make -C build-tsan -j"$jobs" check TESTS="$(make -s -C build-tsan print-tsan-tests)"
    TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0" \
        make -C build-tsan -j"$jobs" check TESTS="$(make -s -C build-tsan print-tsan-nodeadlock-tests)"
    echo "== distcheck"
    make -C build -j"$jobs" distcheck
    echo "== all tests passed"
    ;;
*)
    echo "usage: $0 run [kioku options] | $0 test" >&2
    exit 64
    ;;
esac
