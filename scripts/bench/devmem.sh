#!/usr/bin/env bash
# devmem.sh [-o DIR] [-memmap SPEC] [-cpu MODEL]
#
# Payload verification through the guest's real /dev/mem mapping. Builds a
# small u-root initramfs whose uinit is tools/devmembench, boots it under
# QEMU (1 vCPU, 1 GiB, the bench kernel) with memmap=SPEC, and prints the
# guest's table: CRC-32 beside a copy out of the same mapping, write-back
# (kho-sim's default) and O_SYNC, each with the cache mode PAT granted,
# and the same two on heap memory in the guest.
#
#   -o DIR        where the initramfs, serial log and table go (default out/bench-devmem-<time>)
#   -memmap SPEC  reserved region (default 64M$0x10000000)
#   -cpu MODEL    QEMU CPU model (default QEMU's, qemu64 under TCG, as
#                 scripts/qemu/run.sh boots; max adds PCLMULQDQ, which Go's CRC-32 folds with)
#
# Needs QEMU and a kernel from scripts/fetch-kernel.sh (or KHO_SIM_KERNEL);
# KHO_SIM_ACCEL=kvm on bare metal.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
dir=
memmap='64M$0x10000000'
cpu=()
while [[ $# -gt 0 ]]; do
	case $1 in
	-o) dir=$2; shift 2 ;;
	-memmap) memmap=$2; shift 2 ;;
	-cpu) cpu=(-cpu "$2"); shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
	*) echo "devmem.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[[ -n $dir ]] || dir=$repo/out/bench-devmem-$(date +%Y%m%d-%H%M%S)
mkdir -p "$dir"
cd "$repo"

kernel=$(scripts/fetch-kernel.sh)
GOFLAGS= CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go tool u-root \
	-o "$dir/devmembench.cpio" -format cpio -build bb \
	-initcmd init -uinitcmd "devmembench -poweroff" -defaultsh "" \
	github.com/u-root/u-root/cmds/core/init ./tools/devmembench >&2

accel=${KHO_SIM_ACCEL:-tcg}
echo "devmem.sh: booting $(basename "$kernel") with memmap=$memmap ($accel ${cpu[*]})" >&2
timeout 600 qemu-system-x86_64 -accel "$accel" "${cpu[@]}" -m 1G -smp 1 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$dir/devmembench.cpio" \
	-append "console=ttyS0 quiet panic=-1 memmap=$memmap" \
	-serial "file:$dir/serial.log" -monitor none -display none </dev/null >&2 || true
sed -n 's/\r$//; /^# devmembench:/,/^$/p; /^|/p' "$dir/serial.log" | awk '!seen[$0]++' | tee "$dir/table.md"
grep -q '^| in process' "$dir/table.md" || { echo "devmem.sh: no results; see $dir/serial.log" >&2; exit 1; }
