#!/usr/bin/env bash
# test.sh: every check of the project, in order, with timings.
#
#   1. tools: installs the Debian packages the tests use when one is missing
#      (as root; otherwise says which), fetches the Debian 6.1 and Linux 7.x
#      kernels (scripts/fetch-kernel.sh) unless KHO_SIM_KERNEL and
#      KHO_SIM_KERNEL_ALT name them
#   2. gofmt (no file may need formatting)
#   3. go vet ./...
#   4. go test -race ./... (unit tests; the QEMU test is left to step 5)
#   5. the QEMU matrix (e2e.TestQEMUHandover): one initramfs, a VM per case,
#      VMs side by side (without -race: it only drives QEMU, and the guest
#      binary is built by initramfs/build.sh anyway)
#   6. the real Linux 7.2 and 7.3 kernels (e2e/realkernel.TestRealKernel):
#      builds them from Debian's linux-source-7.2 and -7.3
#      (scripts/luo-kernel/build.sh, cached in .cache/luo-kernel; 7.3's tree
#      is fetched while 7.2 compiles, the compiles one after the other), and
#      for each kernel, side by side: captures its handover twice (once read
#      through /dev/mem on both sides), checks it with kho-sim inspect and
#      kho-sim's model, and times the kernel's luo_kexec_simple against
#      kho-sim's round trip on that kernel; beside them hops 7.2 -> 7.3 ->
#      7.2 with luo_kexec_simple (out/realkernel.txt, logs in out/realkernel/); then TestKexecLoad: stock
#      Debian 6.1 kexec_load()s the 7.2 kernel with a KHO handover in setup_data
#      (out/kexecload-*.log, out/kexecload.txt) and the real kernel restoring
#      kho-sim's memfds (TestRealConsumer); then the corruption matrix
#      (TestCorruptionMatrix): the real 7.2 kernel booted on every
#      internal/corrupt damage of a 7.2 handover and 50 seeded bit flips, two VMs
#      at a time, beside kho-sim's prediction (out/corruption-matrix.txt)
#   7. bounded fuzzing of every fuzz target of the module
#
# Environment: KHO_SIM_E2E=required makes a missing QEMU, kernel or package
# a failure instead of a skip, KHO_SIM_TOOLS=required the same for the tools
# some unit tests compare against; KHO_SIM_VMS (default: the CPUs) bounds the
# VMs running at once; KHO_SIM_KERNEL, KHO_SIM_KERNEL_ALT, KHO_SIM_INITRAMFS,
# KHO_SIM_HOPS: see e2e/qemu_test.go. KHO_SIM_LUO_KERNEL: 1 (default) runs
# step 6 and skips it when the kernel cannot be built, required makes that
# a failure, 0 skips it. FUZZTIME (default 10s) bounds each fuzz target;
# FUZZTIME=0 skips fuzzing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fuzztime=${FUZZTIME:-10s}
required=
[[ ${KHO_SIM_E2E:-} == required || ${KHO_SIM_TOOLS:-} == required ]] && required=1
export KHO_SIM_LUO_KERNEL=${KHO_SIM_LUO_KERNEL:-1}

step_name=
step_start=0
total_start=$(date +%s)
times=()
step() {
	step_name=$*
	step_start=$(date +%s)
	printf '\n=== %s\n' "$step_name"
}
done_step() {
	local d=$(($(date +%s) - step_start))
	printf '=== %ds\n' "$d"
	times+=("$(printf '%5ds  %s' "$d" "$step_name")")
}
# missing_or_fail MESSAGE: a failure when the tests are required, else a
# warning (the tests that need it skip).
missing_or_fail() {
	if [[ -n $required ]]; then
		printf 'test.sh: %s (KHO_SIM_E2E or KHO_SIM_TOOLS is required)\n' "$*" >&2
		exit 1
	fi
	printf 'test.sh: warning: %s; the tests that need it skip\n' "$*" >&2
}

step "tools"
command -v go >/dev/null || { echo "test.sh: go not found: install Go 1.26 and put it on PATH" >&2; exit 1; }
go version
# qemu-system-x86: the QEMU matrix; device-tree-compiler, python3-libfdt:
# reference FDT tools for pkg tests; kexec-tools, dwarves (pahole), gcc:
# tools some tests compare against; cpio: inspecting initramfs images;
# lava-dispatcher: lava-run for LAVA's own run of the QEMU job.
packages=(qemu-system-x86 device-tree-compiler python3-libfdt gcc cpio kexec-tools dwarves lava-dispatcher)
if command -v dpkg-query >/dev/null; then
	missing=()
	for p in "${packages[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed' || missing+=("$p")
	done
	if ((${#missing[@]} == 0)); then
		echo "packages: all installed"
	elif ((EUID == 0)); then
		echo "packages: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update
		apt-get install -y --no-install-recommends "${missing[@]}"
	else
		missing_or_fail "missing Debian packages: ${missing[*]}; as root: apt-get install -y --no-install-recommends ${missing[*]}"
	fi
else
	missing_or_fail "no dpkg-query: cannot check for ${packages[*]}"
fi
if [[ -z ${KHO_SIM_KERNEL:-} ]]; then
	if KHO_SIM_KERNEL=$(scripts/fetch-kernel.sh); then
		export KHO_SIM_KERNEL
	else
		unset KHO_SIM_KERNEL
		missing_or_fail "no Debian 6.1 kernel (scripts/fetch-kernel.sh failed)"
	fi
fi
echo "kernel: ${KHO_SIM_KERNEL:-none}"
# Linux 7.x for the cross-version hops, from experimental or else sid.
if [[ -z ${KHO_SIM_KERNEL_ALT:-} ]]; then
	if KHO_SIM_KERNEL_ALT=$(scripts/fetch-kernel.sh experimental) ||
		KHO_SIM_KERNEL_ALT=$(scripts/fetch-kernel.sh sid); then
		export KHO_SIM_KERNEL_ALT
	else
		unset KHO_SIM_KERNEL_ALT
		missing_or_fail "no Linux 7.x kernel (scripts/fetch-kernel.sh experimental and sid failed)"
	fi
fi
echo "second kernel: ${KHO_SIM_KERNEL_ALT:-none}"
done_step

step "kunit.py: the kernel's KTAP parser (scripts/kunit/fetch.sh)"
# Serial logs newer than this stamp are this run's, for step 5b.
mkdir -p out
touch out/.kunit-since
if KHO_SIM_KUNIT=$(scripts/kunit/fetch.sh); then
	export KHO_SIM_KUNIT
	echo "kunit.py: $KHO_SIM_KUNIT"
else
	unset KHO_SIM_KUNIT
	missing_or_fail "no kunit.py (scripts/kunit/fetch.sh failed)"
fi
done_step

step "gofmt"
mapfile -t unformatted < <(find . \( -name .git -o -name .cache -o -name out -o -name testdata \) -prune -o -name '*.go' -print0 | xargs -0 gofmt -l)
if ((${#unformatted[@]} > 0)); then
	printf 'gofmt: needs formatting: %s\n' "${unformatted[@]}"
	exit 1
fi
done_step

step "go vet ./..."
go vet ./...
done_step

step "go test -race ./... (unit tests)"
go test -race -skip '^(TestQEMU|TestRealKernel$|TestKexecLoad$|TestRealConsumer$|TestCorruptionMatrix$)' ./...
done_step

# One initramfs for the QEMU matrix and the LAVA run (the matrix would
# build the same one itself): LAVA's run then adds only its boots.
if [[ -z ${KHO_SIM_INITRAMFS:-} && -n ${KHO_SIM_KERNEL:-} ]]; then
	step "initramfs/build.sh out/kho-sim.cpio (for the QEMU matrix and LAVA)"
	initramfs/build.sh out/kho-sim.cpio "$KHO_SIM_KERNEL" ${KHO_SIM_KERNEL_ALT:+"$KHO_SIM_KERNEL_ALT"}
	export KHO_SIM_INITRAMFS=$repo/out/kho-sim.cpio
	done_step
fi

vms=${KHO_SIM_VMS:-$(nproc)}
step "go test ./e2e (QEMU matrix, $vms VMs at a time)"
go test -count=1 -timeout 15m -v -parallel "$vms" -run '^TestQEMU' ./e2e/
done_step

step "go test ./lab/lava (lava-run of the QEMU job)"
go test -count=1 -timeout 15m -v -run '^TestQEMULAVAJob$' ./lab/lava/
done_step

step "kunit.py parse of this run's QEMU serial logs"
mapfile -t logs < <(find out -maxdepth 1 \( -name 'e2e-*.log' -o -name 'lava-*.log' \) -newer out/.kunit-since | sort)
if [[ -z ${KHO_SIM_KUNIT:-} ]]; then
	missing_or_fail "no kunit.py: the QEMU logs are not checked with it"
elif ((${#logs[@]} == 0)); then
	missing_or_fail "no QEMU serial log under out/ from this run"
else
	go run ./e2e/ktapverdict -kunit "$KHO_SIM_KUNIT" "${logs[@]}"
fi
done_step

if [[ $KHO_SIM_LUO_KERNEL != 0 ]]; then
	step "real Linux 7.2 and 7.3 kernels: build (or reuse) scripts/luo-kernel"
	# build_kernels: 7.2's tree first (it installs what unpacking needs),
	# then 7.3's downloads and unpacks while 7.2 compiles.
	build_kernels() {
		local fetch rc=0
		scripts/luo-kernel/build.sh --fetch 7.2 || return 1
		scripts/luo-kernel/build.sh --fetch 7.3 &
		fetch=$!
		scripts/luo-kernel/build.sh 7.2 >/dev/null || rc=1
		wait "$fetch" || rc=1
		((rc == 0)) && scripts/luo-kernel/build.sh 7.3 >/dev/null
	}
	if build_kernels; then
		done_step
		step "go test ./e2e/realkernel (real kernels vs kho-sim, 7.2 <-> 7.3 hops, KHO_SIM_LUO_KERNEL=$KHO_SIM_LUO_KERNEL)"
		go test -count=1 -timeout 30m -v -run '^TestRealKernel$' ./e2e/realkernel/
		done_step
		step "go test ./e2e/realkernel (the corruption matrix: the real 7.2 kernel on every damaged handover)"
		go test -count=1 -timeout 30m -v -run '^TestCorruptionMatrix$' ./e2e/realkernel/
		done_step
		step "go test ./e2e/realkernel (Debian 6.1 -> real 7.2 kernel by kexec_load with a KHO handover; the real kernel restores kho-sim's memfds and FLBs)"
		go test -count=1 -timeout 20m -v -run '^(TestKexecLoad|TestRealConsumer)$' ./e2e/realkernel/
	elif [[ $KHO_SIM_LUO_KERNEL == required ]]; then
		echo "test.sh: scripts/luo-kernel/build.sh failed (KHO_SIM_LUO_KERNEL=required)" >&2
		exit 1
	else
		echo "test.sh: warning: scripts/luo-kernel/build.sh failed; e2e/realkernel skipped (KHO_SIM_LUO_KERNEL=0 silences this)" >&2
	fi
	done_step
fi

if [[ $fuzztime != 0 ]]; then
	# Every fuzz target of the module, found by go test -list: a new one
	# is fuzzed without a change here.
	listed=$(go test -list '^Fuzz' ./...)
	mapfile -t targets < <(awk '
		/^Fuzz/ { names[n++] = $1; next }
		$1 == "ok" { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }
	' <<<"$listed")
	if ((${#targets[@]} == 0)); then
		echo "fuzz: go test -list found no fuzz targets"
		exit 1
	fi
	fuzzlog=$(mktemp)
	trap 'rm -f "$fuzzlog"' EXIT
	# fuzz_once PKG TARGET: one bounded run, its output also in $fuzzlog.
	fuzz_once() {
		go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" -fuzzminimizetime 100x "$1" 2>&1 | tee "$fuzzlog"
		return "${PIPESTATUS[0]}"
	}
	for t in "${targets[@]}"; do
		read -r pkg target <<<"$t"
		step "fuzz ${pkg#github.com/kho-sim/kho-sim/} $target for $fuzztime"
		if ! fuzz_once "$pkg" "$target"; then
			# Go 1.26's fuzzing coordinator can report its own -fuzztime
			# deadline as a failure (go.dev/issue/75804, fixed in Go
			# 1.27): "context deadline exceeded" with no failing input.
			# That alone earns one more run; anything else fails.
			if grep -q 'context deadline exceeded' "$fuzzlog" && ! grep -q 'Failing input written' "$fuzzlog"; then
				echo "fuzz: $target hit Go's -fuzztime deadline race without a failing input; once more"
				fuzz_once "$pkg" "$target"
			else
				exit 1
			fi
		fi
		done_step
	done
fi

printf '\n=== step times\n'
printf '%s\n' "${times[@]}"
printf '=== all checks passed in %ds\n' "$(($(date +%s) - total_start))"
