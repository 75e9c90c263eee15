#!/usr/bin/env bash
# Side by side, in one run, store on tmpfs: `berth pull` of debian-multi from a local
# registry (download, verify, unpack) against `skopeo copy` + `umoci unpack` of the same image,
# then a second pull of an image that shares debian-multi's layers and adds one of its own.
# Needs root, docker-registry, skopeo and umoci (Debian packages), and a release build:
# cargo build --release -p berth-engine.
# Usage: crates/engine/bench/pull.sh [runs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/../../.." && pwd)
oci=$(cd "$workspace/../shared/images/oci" && pwd)
berth=${BERTH:-$workspace/target/release/berth}
runs=${1:-3}

scratch=$(mktemp -d /tmp/berth-bench.XXXXXX)
mount -t tmpfs -o size=4g tmpfs "$scratch"
registry_pid=""
cleanup() {
	[ -n "$registry_pid" ] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null || true
	umount -R "$scratch" 2>/dev/null || true
	rmdir "$scratch"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
addr=127.0.0.1:$port
mkdir -p "$scratch/registry"
cat >"$scratch/registry/config.yml" <<CONFIG
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $scratch/registry/data
http:
  addr: $addr
CONFIG
docker-registry serve "$scratch/registry/config.yml" >/dev/null 2>&1 &
registry_pid=$!
until python3 -c "import socket; socket.create_connection(('127.0.0.1',$port))" 2>/dev/null; do sleep 0.05; done

# The second image: debian-multi plus one small layer, made with umoci from a copy of the
# layout. (Not `umoci insert`: umoci 0.4.7 writes that layer's tar cut short, without its
# padding and end blocks, and berth refuses it as GNU tar does.)
cp -r "$oci" "$scratch/layout"
mkdir "$scratch/derived"
echo derived >"$scratch/derived/derived.txt"
tar -cf "$scratch/derived.tar" -C "$scratch/derived" derived.txt
umoci raw add-layer --image "$scratch/layout:debian-multi" --tag derived "$scratch/derived.tar"
skopeo copy -q --dest-tls-verify=false "oci:$scratch/layout:debian-multi" "docker://$addr/debian:multi"
skopeo copy -q --dest-tls-verify=false "oci:$scratch/layout:derived" "docker://$addr/debian:derived"

best() {
	local name=$1 prep=$2; shift 2
	local best=""
	for _ in $(seq "$runs"); do
		eval "$prep"
		local t0 t1
		t0=$(date +%s.%N); "$@" >/dev/null 2>"$scratch/err" || { cat "$scratch/err" >&2; exit 1; }; t1=$(date +%s.%N)
		best=$(python3 -c "t=$t1-$t0; b='$best'; print(f'{min(t, float(b)) if b else t:.3f}')")
	done
	printf '%-52s %8ss\n' "$name" "$best"
}
fresh() { rm -rf "$scratch/root" "$scratch/sk" "$scratch/bundle"; }

echo "debian-multi from $addr; $(nproc) cores; store on tmpfs; best of $runs"
best "berth pull (download + verify + unpack)" 'fresh' \
	"$berth" --root "$scratch/root" pull "$addr/debian:multi"
best "skopeo copy + umoci unpack" 'fresh' \
	bash -c "skopeo copy -q --src-tls-verify=false docker://$addr/debian:multi oci:$scratch/sk:multi && umoci unpack --image $scratch/sk:multi $scratch/bundle"
best "berth pull of an image sharing those layers (+1)" \
	"fresh; \"$berth\" --root \"$scratch/root\" pull -q \"$addr/debian:multi\" >/dev/null" \
	"$berth" --root "$scratch/root" pull "$addr/debian:derived"
best "skopeo copy + umoci unpack of the same, after" \
	"fresh; skopeo copy -q --src-tls-verify=false docker://$addr/debian:multi oci:$scratch/sk:multi" \
	bash -c "skopeo copy -q --src-tls-verify=false docker://$addr/debian:derived oci:$scratch/sk:derived && umoci unpack --image $scratch/sk:derived $scratch/bundle"
