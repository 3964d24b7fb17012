#!/usr/bin/env bash
# build.sh OUT.cpio KERNEL [KERNEL2]
#
# Builds the kho-sim initramfs: an uncompressed newc cpio made by u-root's own
# builder (go tool u-root) with
#   /init                 u-root's init
#   /bin/uinit            "kho-sim run" (u-root init starts it after mounting
#                         /dev, /proc, /sys, /tmp)
#   /bbin/{kho-sim,gosh,ls,cat,dmesg,poweroff}  one busybox binary, symlinked
#   /kernels/next         KERNEL: what kho-sim run kexecs into
#   /kernels/alt          KERNEL2, if given (cross-version hops)
#   /usr/sbin/kexec       Debian's kexec-tools with the shared libraries and the
#                         dynamic loader it needs (u-root's -files resolves them
#                         with the host's ld.so --list): the baseline loader of
#                         kho_sim.loader=kexec-tools; installed here if missing
#   /etc/kho-sim/initramfs  the marker kho-sim checks before it kexecs
#
# The command set is small on purpose: every hop repacks the whole rootfs into
# memory as the next initrd. The kernel images stay in: the next hop needs them.
# Uncompressed, because QEMU loads it directly and decompression is slow under
# TCG. Same inputs give a byte-identical cpio (trimpath, stripped binaries,
# normalised modes and times).
#
# Environment:
#   KHO_SIM_CMD    Go package of kho-sim (default ./cmd/kho-sim).
#   KHO_SIM_EXTRA  extra Go command packages, space separated (lab builds).
set -euo pipefail

usage() {
	echo "usage: $0 OUT.cpio KERNEL [KERNEL2]" >&2
	exit 2
}
[[ $# -eq 2 || $# -eq 3 ]] || usage
out=$1
kernel=$2
kernel2=${3:-}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
for k in "$kernel" ${kernel2:+"$kernel2"}; do
	[[ -r $k ]] || { echo "build.sh: kernel $k is not readable" >&2; exit 1; }
done
case $out in /*) ;; *) out=$PWD/$out ;; esac
mkdir -p "$(dirname "$out")"

kexec_tools=/usr/sbin/kexec
if [[ ! -x $kexec_tools ]]; then
	[[ $(id -u) == 0 ]] || { echo "build.sh: $kexec_tools missing; run as root to install kexec-tools, or install it yourself" >&2; exit 1; }
	echo "build.sh: installing kexec-tools" >&2
	# Never let the package take over this host's reboots.
	echo 'kexec-tools kexec-tools/load_kexec boolean false' | debconf-set-selections
	apt-get update >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kexec-tools >&2
fi

# The busybox binary's mode comes from go build, i.e. from the umask.
umask 022
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# Files added with -files keep their mode; make it independent of the
# caller's umask and of where the kernel came from.
mkdir -p "$stage/etc/kho-sim"
printf 'kho-sim initramfs\n' >"$stage/etc/kho-sim/initramfs"
chmod 0644 "$stage/etc/kho-sim/initramfs"
cp "$kernel" "$stage/next"
chmod 0644 "$stage/next"
files=(
	-files "$stage/etc/kho-sim/initramfs:etc/kho-sim/initramfs"
	-files "$stage/next:kernels/next"
	-files "$kexec_tools:usr/sbin/kexec"
)
if [[ -n $kernel2 ]]; then
	cp "$kernel2" "$stage/alt"
	chmod 0644 "$stage/alt"
	files+=(-files "$stage/alt:kernels/alt")
fi

core=github.com/u-root/u-root/cmds/core
cmds=(
	"$core/init"
	"$core/gosh"
	"$core/ls"
	"$core/cat"
	"$core/dmesg"
	"$core/poweroff"
	"${KHO_SIM_CMD:-./cmd/kho-sim}"
)
# shellcheck disable=SC2206 # word splitting is the point
[[ -n ${KHO_SIM_EXTRA:-} ]] && cmds+=(${KHO_SIM_EXTRA})

start=$(date +%s.%N)
cd "$repo"
# GOFLAGS from the caller (e.g. -race) must not leak into the guest build.
GOFLAGS= CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go tool u-root \
	-o "$out" \
	-format cpio \
	-build bb \
	-initcmd init \
	-uinitcmd "kho-sim run" \
	-defaultsh gosh \
	"${files[@]}" \
	"${cmds[@]}" >&2
end=$(date +%s.%N)

size=$(stat -c %s "$out")
awk -v out="$out" -v size="$size" -v s="$start" -v e="$end" 'BEGIN {
	printf "build.sh: %s: %d bytes (%.1f MiB) in %.1f s\n", out, size, size / 1048576, e - s
}' >&2
