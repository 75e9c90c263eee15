#!/usr/bin/env bash
# Runtime start: `run` and create+start+delete of busybox /bin/true with the default `spec`
# config, berth-runtime against runc and crun, side by side in one hyperfine run; then the
# peak RSS of each `run` (/usr/bin/time -v). bare-syscalls is the floor: only the syscalls of
# the default spec, in a straight line (crates/runtime/examples/bare_syscalls.rs).
#
# crun 1.8 refuses this hybrid cgroup host, so everything runs in a private mount namespace
# where /sys/fs/cgroup/unified is unmounted (the host's mounts are untouched); all three
# runtimes see the same host.
# Usage: bench/runtime-start.sh [runs]   (as root; needs hyperfine, runc, crun, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
if [ -z "${BERTH_BENCH_INNER:-}" ]; then
  # The runtime as shipped for speed and memory: static (glibc static-pie) and optimized for
  # size, so no dynamic loader, libc.so or libgcc_s pages are mapped at every start.
  RUSTFLAGS="-C target-feature=+crt-static" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu CARGO_TARGET_DIR=target/static \
    cargo build --profile release-small -p berth-runtime --target x86_64-unknown-linux-gnu >&2
  cargo build --release -p berth-runtime >&2
  # The floor: the default spec's syscalls in a straight line (crates/runtime/examples).
  cargo build --release -p berth-runtime --example bare_syscalls >&2
  exec unshare -m --propagation private env BERTH_BENCH_INNER=1 "$0" "$@"
fi
umount /sys/fs/cgroup/unified 2>/dev/null || true
berth=$PWD/target/static/x86_64-unknown-linux-gnu/release-small/berth-runtime
berth_dyn=$PWD/target/release/berth-runtime
bare=$PWD/target/release/examples/bare_syscalls
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
scripts/busybox-bundle "$work/bundle" "$berth" >/dev/null
mkdir -p "$work/bundle/rootfs/proc" "$work/bundle/rootfs/dev" "$work/bundle/rootfs/sys"  # for bare-syscalls
sed -i 's/"terminal": true/"terminal": false/; s|^\( *\)"sh"$|\1"/bin/true"|' "$work/bundle/config.json"
# The same bundle with a memory and a pids limit: what the cgroup setup costs.
cp -r "$work/bundle" "$work/limited"
sed -i 's|"resources": {|"resources": {\n      "memory": {"limit": 67108864}, "pids": {"limit": 100},|' "$work/limited/config.json"
grep -q '"pids": {"limit": 100}' "$work/limited/config.json" || { echo "bench: could not add limits" >&2; exit 1; }
cd "$work/bundle"
for rt in berth berth-dyn runc crun; do mkdir -p "$work/root-$rt"; done
hyperfine -N --warmup 5 --runs "$runs" --export-markdown "$work/run.md" \
  -n berth "$berth --root $work/root-berth run b" \
  -n berth-dynamic "$berth_dyn --root $work/root-berth-dyn run b" \
  -n berth-limits "$berth --root $work/root-berth --log /dev/null run --bundle $work/limited bl" \
  -n runc-limits "runc --root $work/root-runc run --bundle $work/limited rl" \
  -n runc "runc --root $work/root-runc run b" \
  -n crun "crun --root $work/root-crun run b" \
  -n bare-syscalls "$bare $work/bundle/rootfs /bin/true"
cat "$work/run.md"
# A lone start: 200 ms of quiet before each run, as for one `docker run` on an idle host.
# Back-to-back runs keep the kernel's cgroup migration lock in its slow-path mode; after a
# pause, the first write of a pid to a v1 cgroup.procs pays an RCU grace period again.
hyperfine -N --warmup 2 --runs "$(( runs / 2 ))" --prepare "sleep 0.2" --export-markdown "$work/lone.md" \
  -n berth "$berth --root $work/root-berth run b" \
  -n runc "runc --root $work/root-runc run b" \
  -n crun "crun --root $work/root-crun run b" \
  -n bare-syscalls "$bare $work/bundle/rootfs /bin/true"
cat "$work/lone.md"
lifecycle() { # binary root
  echo "$1 --root $2 create c >/dev/null && $1 --root $2 start c && $1 --root $2 delete -f c"
}
hyperfine --warmup 5 --runs "$runs" --shell=bash --export-markdown "$work/lifecycle.md" \
  -n berth "$(lifecycle "$berth" "$work/root-berth")" \
  -n runc "$(lifecycle runc "$work/root-runc")" \
  -n crun "$(lifecycle crun "$work/root-crun")"
cat "$work/lifecycle.md"
echo
echo "runs of /bin/true under a 512 KiB memory limit, out of 10:"
sed -i 's|"limit": 67108864|"limit": 524288|' "$work/limited/config.json"
for rt in "berth:$berth" "runc:runc" "crun:crun"; do
  name=${rt%%:*} bin=${rt#*:} ok=0
  for i in $(seq 10); do "$bin" --root "$work/root-$name" run --bundle "$work/limited" m$i >/dev/null 2>&1 && ok=$((ok+1)); "$bin" --root "$work/root-$name" delete -f m$i >/dev/null 2>&1 || true; done
  echo "$name $ok/10"
done
echo
echo "peak RSS of run (KiB, /usr/bin/time -v, median of 5):"
for pair in "berth:$berth" "berth-dyn:$berth_dyn" "runc:runc" "crun:crun"; do
  name=${pair%%:*} bin=${pair#*:}
  for i in 1 2 3 4 5; do
    /usr/bin/time -v "$bin" --root "$work/root-$name" run b 2>&1 >/dev/null | awk '/Maximum resident/ {print $6}'
  done | sort -n | sed -n 3p | sed "s/^/$name /"
done
