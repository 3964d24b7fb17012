#!/usr/bin/env bash
# run.sh [-n RUNS] [-hops N] [-o DIR] [-append ARGS] [-initramfs FILE] [-go] [-scale]
#
# The performance report. Builds the initramfs once, boots the QEMU kexec
# chain RUNS times with kho_sim.loaders= alternating kho-sim's own loader and
# Debian's kexec-tools (kexec -s -l, kexec -e) boot by boot, so both loaders
# are measured in the same run on the same kernel, image and scenario. Odd
# runs start with kho-sim, even runs with kexec-tools. Then prints a Markdown
# table of every "# phase" per loader (median, min-max, count), the ratio
# kho-sim / kexec-tools, the median wall time of a run and the machine
# (tools/benchphases explains how phases are attributed to loaders), and
# kho-sim's userspace share of a hop: start to load plus the initramfs
# repack over those plus kexec_file_load and the next boot's blackout.
#
#   -n RUNS   QEMU chains (default 5)
#   -hops N   kexec hops per chain (default 4: each loader loads twice)
#   -o DIR    where logs and the table go (default out/bench-<time>)
#   -append ARGS  more kernel arguments for every chain
#   -initramfs FILE  boot this initramfs instead of building one
#   -go       also run the Go benchmarks of the model and the image codec
#   -scale    also run internal/sim's BenchmarkScaleHop (a hop in a 1 GiB region
#             as the payload and the FLB, file and session counts grow)
#
# Needs what scripts/qemu/run.sh needs (QEMU, a kernel from
# scripts/fetch-kernel.sh or KHO_SIM_KERNEL); KHO_SIM_ACCEL=kvm on bare
# metal. Exit status 0 only if every chain passed.
set -euo pipefail

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
	exit "${1:-2}"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
runs=5
hops=4
dir=
gobench=0
scale=0
append=
cpio=
while [[ $# -gt 0 ]]; do
	case $1 in
	-n) runs=$2; shift 2 ;;
	-hops) hops=$2; shift 2 ;;
	-o) dir=$2; shift 2 ;;
	-append) append=$2; shift 2 ;;
	-initramfs) cpio=$2; shift 2 ;;
	-go) gobench=1; shift ;;
	-scale) scale=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "bench: unknown argument $1" >&2; usage ;;
	esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: -n wants a count, got $runs" >&2; exit 2; }
[[ $hops =~ ^[1-9][0-9]*$ ]] || { echo "bench: -hops wants at least 1, got $hops" >&2; exit 2; }
[[ -n $dir ]] || dir=$repo/out/bench-$(date +%Y%m%d-%H%M%S)
mkdir -p "$dir"
cd "$repo"

kernel=$(scripts/fetch-kernel.sh)
if [[ -n $cpio ]]; then
	cp "$cpio" "$dir/kho-sim.cpio"
else
	initramfs/build.sh "$dir/kho-sim.cpio" "$kernel"
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
qemu=$(qemu-system-x86_64 --version | sed -n '1s/^QEMU emulator version //p')
machine="$cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB; host Linux $(uname -r);"
machine+=" QEMU $qemu (${KHO_SIM_ACCEL:-tcg}, 1 vCPU, 1 GiB); guest $(basename "$kernel");"
machine+=" kernel arguments added: ${append:-none};"
machine+=" load average $(cut -d' ' -f1-3 /proc/loadavg) at start; $(date -u +%Y-%m-%d)"
echo "bench: $machine" >&2

logs=()
walls=()
failed=0
for ((i = 1; i <= runs; i++)); do
	loaders=kho-sim,kexec-tools
	((i % 2 == 0)) && loaders=kexec-tools,kho-sim
	log=$dir/run-$i.log
	echo "bench: run $i/$runs, $hops hops, kho_sim.loaders=$loaders" >&2
	status=0
	scripts/qemu/run.sh --hops "$hops" --append "kho_sim.loaders=$loaders${append:+ $append}" --log "$log" \
		"$kernel" "$dir/kho-sim.cpio" >"$dir/run-$i.out" 2>&1 || status=$?
	wall=$(sed -n 's/^run.sh: wall time \([0-9.]*\) s$/\1/p' "$dir/run-$i.out")
	tail -n 1 "$dir/run-$i.out" >&2
	logs+=("$log")
	if ((status != 0)); then
		failed=$((failed + 1))
		echo "bench: run $i failed (status $status): see $dir/run-$i.out" >&2
	elif [[ -n $wall ]]; then
		walls+=("$wall")
	fi
done

wall_list=$(IFS=,; echo "${walls[*]}")
GOFLAGS= go run ./tools/benchphases -wall "$wall_list" -machine "$machine" "${logs[@]}" | tee "$dir/table.md"

if [[ $gobench == 1 ]]; then
	echo >&2
	echo "bench: Go benchmarks" >&2
	GOFLAGS= go test -run xxx -bench . -benchtime 200x \
		./internal/sim ./internal/payload ./pkg/kho ./pkg/fdt ./pkg/flb ./pkg/luo | tee "$dir/go-bench.txt"
fi
if [[ $scale == 1 ]]; then
	echo >&2
	echo "bench: BenchmarkScaleHop" >&2
	GOFLAGS= go test -run xxx -bench ScaleHop -benchtime 5x ./internal/sim | tee "$dir/scale-bench.txt"
fi
echo "bench: logs and table in $dir" >&2
((failed == 0)) || { echo "bench: $failed of $runs runs failed" >&2; exit 1; }
