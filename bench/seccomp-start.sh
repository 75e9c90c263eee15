#!/usr/bin/env bash
# `run` of busybox /bin/true under Docker's default seccomp profile (as dockerd 20.10 sends it
# to the runtime: bench/docker-20.10-default-seccomp.json), berth-runtime's first container
# (the profile compiled) and second (the compiled program read from its cache) against runc
# with the same profile, side by side in one hyperfine run.
# Usage: bench/seccomp-start.sh [runs]   (as root; hyperfine, runc, busybox-static, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
cargo build --release -p berth-runtime >&2
berth=$PWD/target/release/berth-runtime
work=$(mktemp -d /tmp/berth-bench-seccomp.XXXXXX)
trap 'rm -rf "$work"' EXIT
scripts/busybox-bundle "$work/bundle" "$berth" >/dev/null
python3 - "$work/bundle/config.json" bench/docker-20.10-default-seccomp.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["linux"]["seccomp"] = json.load(open(sys.argv[2]))
json.dump(c, open(sys.argv[1], "w"))
PY
cd "$work/bundle"
hyperfine -N --warmup 3 --runs "$runs" \
  --prepare "rm -rf $work/root-first/@seccomp-cache" \
  -n berth-first "$berth --root $work/root-first run b" \
  -n berth-cached "$berth --root $work/root-cached run b" \
  -n runc "runc --root $work/root-runc run b"
