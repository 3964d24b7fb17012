#!/usr/bin/env bash
# capture.sh: boots a real Linux 7.x kernel of build.sh (7.2 or 7.3) in
# QEMU with the guest/luo initramfs, lets it preserve memfds, kexec into
# itself and dump the handover it received, and turns the result into test
# data.
#
#   capture.sh [OUTDIR]     (default: testdata/real-SERIES)
#
# The guest can print only what survives until its /init runs after the
# kexec: the new kernel frees the LUO blob in an early initcall and reuses
# the pages of the radix tree (never preserved), so the guest ships a
# snapshot of its radix tree across the kexec and its LUO page is garbage.
# To have the whole handover as it was handed over, this script also stops
# QEMU when the old kernel prints "Starting new kernel" (serialization is
# done, the new kernel not yet started), saves guest RAM through the QEMU
# monitor, and lets the run continue. tools/luo-extract decodes that image.
#
# OUTDIR receives (only when the guest printed TEST PASSED and the image
# decoded):
#   handover.txt      every page of the handover, from the RAM image taken at
#                     the kexec (pkg/kho's dump format)
#   guest-dump.txt    the KHOSETUP/KHODUMP lines the guest printed after the
#                     kexec (/dev/mem, radix nodes from its snapshot)
#   guest-vs-kexec.txt  which of the guest's pages differ from the image
#   console.log       the rest of the serial console, each line prefixed with
#                     the host's seconds since QEMU started
#   timings           boot and kexec times of this run
# and, when OUTDIR is the default, the tests that read it run against the new
# data (e2e/realkernel captures into a temporary OUTDIR and compares).
#
# With LUO_INCOMING=dump the kexec'd kernel boots with kho=off
# liveupdate=off (guest/luo: luo_incoming=dump): it still reserves every
# preserved page, but LUO never frees its blob, so the guest reads the
# whole handover through /dev/mem (radix nodes from the outgoing side's
# /dev/mem snapshot) and only dumps; guest-vs-kexec.txt must then show no
# difference but the scratch array.
#
# Environment:
#   KHO_SIM_LUO_SERIES  7.2 (default) or 7.3: the kernel build.sh builds and
#                       the default OUTDIR.
#   KHO_SIM_LUO_KERNEL  a bzImage to use instead of build.sh's.
#   CAPTURE_CONSOLE     where the whole serial console (KHODUMP lines and
#                       all) is kept, whatever the outcome (default
#                       .cache/luo-kernel/last-console.log).
#   LUO_INCOMING        "dump": see above (default: retrieve and finish).
#   QEMU                QEMU binary (default qemu-system-x86_64).
#   QEMU_ACCEL          default tcg (nested KVM hangs on these machines).
#   TIMEOUT             seconds for the whole run (default 300).
set -euo pipefail

log() { printf 'capture: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
series=${KHO_SIM_LUO_SERIES:-7.2}
out=${1:-$repo/testdata/real-$series}
console_copy=${CAPTURE_CONSOLE:-$repo/.cache/luo-kernel/last-console.log}
qemu=${QEMU:-qemu-system-x86_64}
accel=${QEMU_ACCEL:-tcg}
timeout_s=${TIMEOUT:-300}
command -v "$qemu" >/dev/null || die "$qemu not found (apt-get install qemu-system-x86)"

kernel=${KHO_SIM_LUO_KERNEL:-$("$repo/scripts/luo-kernel/build.sh" "$series")}
[[ -r $kernel ]] || die "kernel $kernel not readable"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building guest/luo"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$work/luo" ./guest/luo)
"$work/luo" pack -kernel "$kernel" -o "$work/initramfs.cpio"
log "initramfs: $(stat -c %s "$work/initramfs.cpio") bytes (kernel $(stat -c %s "$kernel"), guest $(stat -c %s "$work/luo"))"

# no_timer_check: under TCG on a busy host the IO-APIC timer check can miss
# its ticks and panic ("IO-APIC + timer doesn't work!").
append="console=ttyS0 kho=on liveupdate=on panic=-1 no_timer_check"
case ${LUO_INCOMING:-} in
"") ;;
dump) append+=" luo_incoming=dump" ;;
*) die "LUO_INCOMING=$LUO_INCOMING: want dump or nothing" ;;
esac
ram=$work/ram.bin
fifo=$work/qemu-stdin
mkfifo "$fifo"
# QEMU's stdin, kept open by this shell; -nographic multiplexes the serial
# console and the monitor on stdio (Ctrl-A c switches between them).
exec 3<>"$fifo"
log "booting: $qemu -accel $accel -m 1G, timeout ${timeout_s}s"
start_us=${EPOCHREALTIME/./}
set +e
# QEMU runs in $work so that pmemsave gets a relative file name: the
# monitor would parse a leading / as a division of the size argument.
(cd "$work" && exec timeout "$timeout_s" "$qemu" -accel "$accel" -m 1G -smp 1 -nographic -no-reboot \
	-kernel "$kernel" -initrd "$work/initramfs.cpio" -append "$append" <&3 2>&1) |
	{
		saved=0
		while IFS= read -r line; do
			line=${line%$'\r'}
			t=$((${EPOCHREALTIME/./} - start_us))
			printf '%4d.%03d %s\n' $((t / 1000000)) $((t / 1000 % 1000)) "$line"
			if ((saved == 0)) && [[ $line == *'kexec_core: Starting new kernel'* ]]; then
				saved=1
				printf '\001cstop\npmemsave 0 0x40000000 %s\ncont\n\001c' "${ram##*/}" >&3
			fi
		done
	} >"$work/console.log"
rc=${PIPESTATUS[0]}
set -e
exec 3>&-
log "QEMU exited with $rc after $(((${EPOCHREALTIME/./} - start_us) / 1000)) ms"
mkdir -p "$(dirname "$console_copy")"
cp "$work/console.log" "$console_copy"

grep -v -e ' KHODUMP ' -e ' KHOSETUP ' "$work/console.log" | grep -e 'LUO-GUEST' -e 'LUO-TIME' -e 'TEST' >&2 || true
grep -q 'LUO-GUEST stage=2: TEST PASSED' "$work/console.log" ||
	die "no TEST PASSED; console kept in $console_copy"

# at EVENT STAGE: host seconds at the LUO-TIME line of that event.
at() { awk -v e="event=$1" -v s="stage=$2" '$2 == "LUO-TIME" && $3 == s && $4 == e { print $1; exit }' "$work/console.log"; }
# guest FIELD EVENT STAGE: a field (uptime=, init=) of that LUO-TIME line.
field() { awk -v f="$1=" -v e="event=$2" -v s="stage=$3" '$2 == "LUO-TIME" && $3 == s && $4 == e { for (i = 5; i <= NF; i++) if (index($i, f) == 1) print substr($i, length(f) + 1); exit }' "$work/console.log"; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# The pause for the RAM image: from the line that triggered it to the
# monitor's echo of "cont" (echoed once pmemsave has returned; the echo is
# full of terminal escapes, hence the loose match).
pause_start=$(awk '/kexec_core: Starting new kernel/ { print $1; exit }' "$work/console.log")
pause_end=$(awk '/\(qemu\) c.*cont/ { print $1; exit }' "$work/console.log")
pause=$(sub "$pause_start" "$pause_end")
kexec_load=$(sed -n 's/.*kexec_file_load took \([0-9.]*\) s.*/\1/p' "$work/console.log" | head -n 1)
{
	# <cache>/<version>/<config key>/bzImage
	printf 'kernel %s\n' "$(basename "$(dirname "$(dirname "$kernel")")")"
	printf 'boot1_qemu_to_init %s\n' "$(at init 1)"
	printf 'boot1_kernel_uptime_at_init %s\n' "$(field uptime init 1)"
	printf 'kexec_file_load %s\n' "$kexec_load"
	printf 'ram_image_pause %s\n' "$pause"
	printf 'reboot_kexec_to_init2_without_pause %s\n' "$(awk -v a="$(at reboot-kexec 1)" -v b="$(at init 2)" -v p="$pause" 'BEGIN { printf "%.3f", b - a - p }')"
	printf 'boot2_kernel_uptime_at_init %s\n' "$(field uptime init 2)"
	printf 'boot2_dump %s\n' "$(sub "$(at init 2)" "$(at dumped 2)")"
	printf 'total_qemu_to_end_without_pause %s\n' "$(awk -v a="$(at end 2)" -v p="$pause" 'BEGIN { printf "%.3f", a - p }')"
} >"$work/timings"
cat "$work/timings" >&2

[[ -s $ram ]] || die "QEMU saved no RAM image"
mkdir -p "$out"
(cd "$repo" && go run ./tools/luo-extract -mem "$ram" -console "$work/console.log" \
	-o "$out/handover.txt" -diff "$out/guest-vs-kexec.txt")
grep -e ' KHOSETUP ' -e ' KHODUMP ' "$work/console.log" | sed -E 's/^ *[0-9.]+ //' >"$out/guest-dump.txt"
grep -v -e ' KHODUMP ' -e ' KHOSETUP ' "$work/console.log" >"$out/console.log"
cp "$work/timings" "$out/timings"
log "wrote $out ($(grep -c KHODUMP "$out/handover.txt") pages from the RAM image, $(grep -c KHODUMP "$out/guest-dump.txt") from the guest)"
# These tests read only the committed data (internal/realhandover): run them when it changed.
if [[ $out -ef $repo/testdata/real-7.2 ]]; then
	(cd "$repo" && go test ./pkg/kho/ ./pkg/luo/ ./pkg/inspect/ ./internal/sim/ ./cmd/kho-sim/) >&2
fi
