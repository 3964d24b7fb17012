#!/usr/bin/env bash
# demo.sh: the whole kho-sim story on one machine. As root on Debian 12 with
# Go installed: installs QEMU if missing, fetches a Debian cloud kernel (or
# uses KHO_SIM_KERNEL), builds the initramfs, boots it in QEMU and lets
# kho-sim run 3 boots / 2 kexec hops of its default scenario, then prints
# each boot's KTAP verdict with its phase timings.
#
# Environment: KHO_SIM_KERNEL, KHO_SIM_HOPS (default 2), KHO_SIM_SCENARIO,
# KHO_SIM_ACCEL=kvm, and the rest of scripts/qemu/run.sh's variables.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
say() { printf '\n==> %s\n' "$*"; }

command -v go >/dev/null || {
	echo "demo: Go is not installed; kho-sim needs Go 1.26 (https://go.dev/dl/)" >&2
	exit 1
}
if ! command -v qemu-system-x86_64 >/dev/null; then
	say "installing QEMU"
	[[ $(id -u) == 0 ]] || { echo "demo: run as root to install qemu-system-x86, or install it yourself" >&2; exit 1; }
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86
fi

say "kernel"
kernel=$(scripts/fetch-kernel.sh)
echo "$kernel"

say "building the initramfs"
mkdir -p out
initramfs/build.sh out/kho-sim.cpio "$kernel"

say "booting: $((${KHO_SIM_HOPS:-2} + 1)) boots, ${KHO_SIM_HOPS:-2} kexec hops under QEMU"
scripts/qemu/run.sh --hops "${KHO_SIM_HOPS:-2}" --log out/demo.log "$kernel" out/kho-sim.cpio
