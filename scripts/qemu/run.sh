#!/usr/bin/env bash
# run.sh [options] KERNEL INITRAMFS
#
# Boots KERNEL with INITRAMFS in QEMU, lets kho-sim run its chain of kexec
# hops, captures the serial console to a log (echoed as it comes), then judges
# the KTAP in the log. Exits 0 only if every boot passed.
#
# Options (environment variable in brackets):
#   --scenario NAME   kho_sim.scenario= (KHO_SIM_SCENARIO; default: kho-sim's own)
#   --hops N          kho_sim.hops=, boots = N+1 (KHO_SIM_HOPS; default 2)
#   --memmap SPEC     reserved region, memmap=SPEC (KHO_SIM_MEMMAP; default 16M$0x10000000)
#   --append ARGS     more kernel arguments (KHO_SIM_APPEND)
#   --log FILE        serial log (KHO_SIM_LOG; default out/qemu-<time>.log)
#   --timeout S       total time limit (KHO_SIM_TIMEOUT; default 300)
#   --silence S       kill QEMU if the guest prints nothing for S seconds
#                     (KHO_SIM_SILENCE; default 60)
#   --memory SIZE     guest memory (KHO_SIM_MEMORY; default 1G)
#   --interactive     console on this terminal, no watchdog, no verdict
#   --no-verdict      only boot and capture; exit status is QEMU's
# KHO_SIM_ACCEL=kvm uses KVM; the default is TCG because nested KVM hangs on
# the virtual machines this project runs on (see README).
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scenario=${KHO_SIM_SCENARIO:-}
hops=${KHO_SIM_HOPS:-2}
memmap=${KHO_SIM_MEMMAP:-'16M$0x10000000'}
append=${KHO_SIM_APPEND:-}
log=${KHO_SIM_LOG:-}
timeout=${KHO_SIM_TIMEOUT:-300}
silence=${KHO_SIM_SILENCE:-60}
memory=${KHO_SIM_MEMORY:-1G}
accel=${KHO_SIM_ACCEL:-tcg}
interactive=0
verdict=1

while [[ $# -gt 0 ]]; do
	case $1 in
	--scenario) scenario=$2; shift 2 ;;
	--hops) hops=$2; shift 2 ;;
	--memmap) memmap=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--log) log=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--silence) silence=$2; shift 2 ;;
	--memory) memory=$2; shift 2 ;;
	--interactive) interactive=1; shift ;;
	--no-verdict) verdict=0; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	-*) echo "run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[[ $# -eq 2 ]] || usage
kernel=$1
initramfs=$2
[[ $hops =~ ^[0-9]+$ ]] || { echo "run.sh: --hops wants a number, got $hops" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ && $silence =~ ^[0-9]+$ ]] || { echo "run.sh: --timeout and --silence want seconds" >&2; exit 2; }
for f in "$kernel" "$initramfs"; do
	[[ -r $f ]] || { echo "run.sh: $f is not readable" >&2; exit 1; }
done
command -v qemu-system-x86_64 >/dev/null || {
	echo "run.sh: qemu-system-x86_64 not found (apt-get install -y --no-install-recommends qemu-system-x86)" >&2
	exit 1
}

cmdline="console=ttyS0 quiet no_timer_check retain_initrd panic=-1 memmap=$memmap kho_sim.hops=$hops"
[[ -n $scenario ]] && cmdline+=" kho_sim.scenario=$scenario"
[[ -n $append ]] && cmdline+=" $append"

case $accel in
tcg) accel_args=(-accel tcg) ;;
kvm) accel_args=(-accel kvm -cpu host) ;;
*) echo "run.sh: KHO_SIM_ACCEL must be tcg or kvm, not $accel" >&2; exit 2 ;;
esac

qemu=(
	qemu-system-x86_64 "${accel_args[@]}"
	-m "$memory" -smp 1
	-nographic -no-reboot
	-kernel "$kernel" -initrd "$initramfs"
	-append "$cmdline"
)

if [[ $interactive == 1 ]]; then
	echo "run.sh: ${qemu[*]}" >&2
	echo "run.sh: Ctrl-A X quits QEMU" >&2
	exec "${qemu[@]}"
fi

if [[ -z $log ]]; then
	mkdir -p "$repo/out"
	log=$repo/out/qemu-$(date +%Y%m%d-%H%M%S).log
fi
mkdir -p "$(dirname "$log")"
: >"$log"

echo "run.sh: kernel $kernel" >&2
echo "run.sh: initramfs $initramfs" >&2
echo "run.sh: append $cmdline" >&2
echo "run.sh: log $log" >&2

start=$(date +%s.%N)
"${qemu[@]}" </dev/null >>"$log" 2>&1 &
qemu_pid=$!
tail -n +1 -f --pid="$qemu_pid" "$log" &
tail_pid=$!
stop_qemu() {
	kill "$qemu_pid" 2>/dev/null || true
}
trap stop_qemu INT TERM

# Watchdog: poll the log's size once a second.
killed=
t0=$SECONDS
last_size=0
last_change=$SECONDS
while kill -0 "$qemu_pid" 2>/dev/null; do
	sleep 1
	size=$(stat -c %s "$log")
	if ((size != last_size)); then
		last_size=$size
		last_change=$SECONDS
	fi
	if ((SECONDS - last_change >= silence)); then
		killed="guest printed nothing for $silence s"
		break
	fi
	if ((SECONDS - t0 >= timeout)); then
		killed="time limit of $timeout s reached"
		break
	fi
done
if [[ -n $killed ]]; then
	stop_qemu
fi
qemu_status=0
wait "$qemu_pid" || qemu_status=$?
wait "$tail_pid" 2>/dev/null || true
trap - INT TERM
end=$(date +%s.%N)

echo >&2
[[ -n $killed ]] && echo "run.sh: $killed; QEMU killed" >&2
awk -v s="$start" -v e="$end" 'BEGIN { printf "run.sh: wall time %.1f s\n", e - s }' >&2

if [[ $verdict == 0 ]]; then
	[[ -z $killed ]] || exit 1
	exit "$qemu_status"
fi
status=0
(cd "$repo" && GOFLAGS= go run ./e2e/ktapverdict -boots $((hops + 1)) "$log") || status=$?
if [[ -n $killed && $status == 0 ]]; then
	status=1
fi
exit "$status"
