#!/bin/sh
# kioku's one entry point for a fresh Debian 12 machine (run as root, or with
# sudo available): installs what is missing, builds, then
#   ./build.sh run [kioku options]   runs kioku in the foreground
#   ./build.sh test                  runs the whole test suite (12 to 17
#                                    minutes on 2 cores): unit, integration,
#                                    ASan+UBSan, TSan, fuzzing (libFuzzer),
#                                    distcheck, a line as each stage passes
# Builds go to build/, build-asan/, build-tsan/ and build-fuzz/; the source tree stays clean.
set -eu

cd "$(dirname "$0")"
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

run_deps="build-essential autoconf automake pkg-config libevent-dev libxxhash-dev libssl-dev \
libsystemd-dev liblua5.1-0-dev lua-cjson-dev lua-bitop-dev"
# io_uring worker loop (-o io_uring, issue 12).
run_deps="$run_deps liburing-dev"
# systemd: systemd-analyze and the unit directory; man-db, groff-base: the man page check.
test_deps="check libmemcached-dev libmemcached-tools libhiredis-dev redis-tools redis-server \
python3 python3-redis python3-pymemcache python3-pylibmc nutcracker netcat-openbsd openssl \
systemd man-db groff-base"

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
        # A warning today is an error in a later autoconf: the tests refuse it.
        out=$(autoreconf -fi 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
        case $out in
        *[Ww]arning*)
            printf '%s\n' "$out" >&2
            if [ "$cmd" = test ]; then
                echo "== autoreconf warned (see above): fix configure.ac or Makefile.am" >&2
                exit 1
            fi
            ;;
        esac
    fi
    mkdir -p "$dir"
    (cd "$dir" && { [ -f Makefile ] || "$top/configure" -q "$@"; } && make -s -j"$jobs")
}

# Untracked files that .gitignore does not cover (none outside a git checkout).
untracked() {
    git -C "$top" status --porcelain --untracked-files=all 2>/dev/null | grep '^??' || true
}

# m:ss of a number of seconds.
clock() {
    printf '%d:%02d' $(($1 / 60)) $(($1 % 60))
}

# One progress line for a stage that just passed: the time since the test
# run started, then how long the stage took.
stage() {
    now=$(date +%s)
    echo "== [$(clock $((now - start)))] $1 passed in $(clock $((now - ${last:-$start})))"
    last=$now
}

# The fuzz stage: build the libFuzzer targets (fuzz/) with clang in
# build-fuzz/, then run each from its seed corpus for FUZZ_SECONDS (20) and
# fail on any crash, leak, sanitizer report or timeout. New inputs go to
# build-fuzz/corpus/, a failing one to build-fuzz/artifacts/.
fuzz_stage() {
    install_missing clang libclang-rt-14-dev
    mkdir -p build-fuzz/artifacts
    # "make Makefile" first: a Makefile that regenerates itself would print
    # into the list of targets.
    targets=$(cd build-fuzz && { [ -f Makefile ] || "$top/configure" -q CC=clang --enable-fuzzing; } &&
        make -s Makefile >/dev/null && make -s print-fuzz-targets)
    make -s -C build-fuzz -j"$jobs" $targets
    for t in $targets; do
        name=${t#fuzz/}
        mkdir -p "build-fuzz/corpus/$name"
        dict=
        [ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "build-fuzz/$t" -max_total_time="${FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 $dict \
            -artifact_prefix="build-fuzz/artifacts/$name-" \
            "build-fuzz/corpus/$name" "fuzz/corpus/$name" >"build-fuzz/$name.log" 2>&1 ||
            { tail -n 40 "build-fuzz/$name.log"; echo "== $name failed: build-fuzz/$name.log" >&2; exit 1; }
    done
}

# After a failed make check in DIR: the end of each failed test's log, so
# that a CI run shows why (automake keeps only the summary on screen).
show_failures() {
    for trs in $(find "$1" -name '*.trs' -newer "$1/Makefile" 2>/dev/null); do
        grep -Eq '^:test-result: (FAIL|ERROR)' "$trs" || continue
        echo "== ${trs%.trs}.log, its last 60 lines:"
        tail -n 60 "${trs%.trs}.log"
    done
    exit 1
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
run)
    install_missing $run_deps
    build_in build
    # kioku, like memcached, will not run as root without -u: as root, run
    # it as nobody unless the options name a user.
    if [ "$(id -u)" -eq 0 ]; then
        case " $* " in
        *" -u"*|*" --user"*) ;;
        *) set -- -u nobody "$@" ;;
        esac
    fi
    exec build/src/kioku "$@"
    ;;
test)
    install_missing $run_deps $test_deps
    echo "== running every test: 12 to 17 minutes on 2 cores, one line per stage as it passes"
    start=$(date +%s)
    before=$(untracked)
    build_in build
    stage "build: kioku and its tests in build/"
    make -s -C build -j"$jobs" check TESTS="$(make -s -C build print-unit-tests)" ||
        show_failures build
    stage "unit: the Check suites, no sockets"
    make -s -C build -j"$jobs" check TESTS="$(make -s -C build print-integration-tests)" ||
        show_failures build
    stage "integration: the built server driven by real clients"
    # Sanitizers slow tests several-fold, more on a busy machine: give the
    # Check timeouts (and the harness's I/O deadlines) three times as long.
    CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-3}
    export CK_TIMEOUT_MULTIPLIER
    build_in build-asan --enable-sanitizer=address
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
        make -s -C build-asan -j"$jobs" check || show_failures build-asan
    stage "ASan+UBSan: every test, in build-asan/"
    build_in build-tsan --enable-sanitizer=thread
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
        make -s -C build-tsan -j"$jobs" check TESTS="$(make -s -C build-tsan print-tsan-tests)" ||
        show_failures build-tsan
    TSAN_OPTIONS="halt_on_error=1 detect_deadlocks=0" \
        make -s -C build-tsan -j"$jobs" check TESTS="$(make -s -C build-tsan print-tsan-nodeadlock-tests)" ||
        show_failures build-tsan
    stage "TSan: the concurrent tests, in build-tsan/"
    fuzz_stage
    stage "fuzz: each libFuzzer target for ${FUZZ_SECONDS:-20} s, in build-fuzz/"
    # distcheck configures and builds twice more: its log is shown on failure.
    # The integration suite already ran on these sources above, so inside
    # the tarball's build only the unit suites, service.py (make install,
    # the man page, the unit) and check_server run; a packager's plain
    # `make distcheck` runs every test.
    dist_tests="$(make -s -C build print-unit-tests) t/integration/service.py t/integration/check_server"
    make -s -C build -j"$jobs" distcheck TESTS="$dist_tests" >build/distcheck.log 2>&1 ||
        { tail -n 60 build/distcheck.log; echo "== distcheck failed: build/distcheck.log" >&2; exit 1; }
    stage "distcheck: the release tarball, built and tested"
    if [ "$(untracked)" != "$before" ]; then
        echo "== the run left files that git does not ignore:" >&2
        untracked >&2
        exit 1
    fi
    echo "== [$(clock $(( $(date +%s) - start )))] all tests passed; the tree is as clean as before"
    ;;
*)
    echo "usage: $0 run [kioku options] | $0 test" >&2
    exit 64
    ;;
esac
