#!/usr/bin/env bash
# Side by side, in one run, store on tmpfs: loading debian-multi from the shared OCI layout
# (blobs copied and verified + layers unpacked) with berth, against skopeo copy + umoci unpack
# of the same image, and unpacking alone against tar xzf of the same layers and the
# single-threaded gunzip floor. Needs root, skopeo and umoci (Debian packages), and a release
# build: cargo build --release -p berth-engine.
# Usage: crates/engine/bench/unpack.sh [runs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/../../.." && pwd)
oci=$(cd "$workspace/../shared/images/oci" && pwd)
berth=${BERTH:-$workspace/target/release/berth}
runs=${1:-3}
image=debian-multi
layers=$(python3 -c "
import json,sys
idx=json.load(open('$oci/index.json'))
m=[d for d in idx['manifests'] if d['annotations']['org.opencontainers.image.ref.name']=='$image'][0]
man=json.load(open('$oci/blobs/sha256/'+m['digest'][7:]))
print(' '.join(l['digest'][7:] for l in man['layers']))")

scratch=$(mktemp -d /tmp/berth-bench.XXXXXX)
mount -t tmpfs -o size=4g tmpfs "$scratch"
cleanup() { umount -R "$scratch" 2>/dev/null || true; rmdir "$scratch"; rm -f "$scratch.err"; }
trap cleanup EXIT

# Prints the fastest of $runs wall-clock times of a command, in seconds; $prep runs before each.
best() {
	local name=$1 prep=$2; shift 2
	local best=""
	for _ in $(seq "$runs"); do
		eval "$prep"
		local t0 t1
		t0=$(date +%s.%N); "$@" >/dev/null 2>"$scratch.err" || { cat "$scratch.err" >&2; exit 1; }; t1=$(date +%s.%N)
		best=$(python3 -c "t=$t1-$t0; b='$best'; print(f'{min(t, float(b)) if b else t:.3f}')")
	done
	printf '%-44s %8ss\n' "$name" "$best"
}

reset() { find "$scratch" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; mkdir -p "$scratch/root"; }
# Blobs already in the tmpfs copy of the layout, so every tool reads from memory.
copy_layout() { reset; cp -r "$oci" "$scratch/oci"; }

echo "image $image: $(echo "$layers" | wc -w) layers, $(du -shL "$oci" | cut -f1) layout; $(nproc) cores; best of $runs"
best "berth load (verify + unpack, parallel)" 'copy_layout' \
	"$berth" --root "$scratch/root" load --input "$scratch/oci" "$image"
best "berth load again (layers already there)" ':' \
	"$berth" --root "$scratch/root" load --input "$scratch/oci" "$image"
best "skopeo copy + umoci unpack" 'copy_layout' \
	bash -c "skopeo copy -q oci:$scratch/oci:$image oci:$scratch/sk:$image && umoci unpack --image $scratch/sk:$image $scratch/bundle"
best "tar xzf of the layers, one after another" 'copy_layout; mkdir -p $scratch/tx' \
	bash -c "for l in $layers; do tar -C $scratch/tx -xzf $scratch/oci/blobs/sha256/\$l; done"
best "gzip -dc of the layers > /dev/null (floor)" 'copy_layout' \
	bash -c "for l in $layers; do gzip -dc $scratch/oci/blobs/sha256/\$l >/dev/null; done"
