#!/usr/bin/env bash
# `exec` of /bin/true into a running busybox container: berth-runtime against runc, side by
# side, once with 200 ms of quiet before each exec (a lone `docker exec` on an idle host, where
# a write of a pid to a cgroup.procs file pays an RCU grace period) and once back to back.
# Usage: bench/exec-start.sh [runs]   (as root; needs hyperfine, runc, busybox-static)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
RUSTFLAGS="-C target-feature=+crt-static" LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu CARGO_TARGET_DIR=target/static \
  cargo build --profile release-small -p berth-runtime --target x86_64-unknown-linux-gnu >&2
berth=$PWD/target/static/x86_64-unknown-linux-gnu/release-small/berth-runtime
work=$(mktemp -d /tmp/berth-bench-exec.XXXXXX)
cleanup() {
  "$berth" --root "$work/root-berth" delete -f e >/dev/null 2>&1 || true
  runc --root "$work/root-runc" delete -f e >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/busybox-bundle "$work/bundle" "$berth" >/dev/null
sed -i 's/"terminal": true/"terminal": false/; s|^\( *\)"sh"$|\1"sleep", "1000"|' "$work/bundle/config.json"
cd "$work/bundle"
"$berth" --root "$work/root-berth" run -d e </dev/null >/dev/null
runc --root "$work/root-runc" run -d e </dev/null >/dev/null
hyperfine -N --warmup 3 --runs "$runs" --prepare "sleep 0.2" \
  -n berth-lone "$berth --root $work/root-berth exec e /bin/true" \
  -n runc-lone "runc --root $work/root-runc exec e /bin/true"
hyperfine -N --warmup 3 --runs "$runs" \
  -n berth "$berth --root $work/root-berth exec e /bin/true" \
  -n runc "runc --root $work/root-runc exec e /bin/true"
