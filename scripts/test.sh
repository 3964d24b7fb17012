#!/usr/bin/env bash
# test.sh: every check of the project, in order, with timings.
#
#   1. gofmt (no file may need formatting)
#   2. go vet ./...
#   3. go test -race ./... (unit tests; the QEMU test is left to step 4)
#   4. the QEMU end-to-end test: build the initramfs, boot a Debian kernel,
#      chain the kexec hops, judge the KTAP (without -race: it only drives
#      QEMU, and the guest binary is built by initramfs/build.sh anyway)
#   5. bounded fuzzing of the parsers of untrusted bytes
#
# Environment: KHO_SIM_E2E=required makes a missing QEMU or kernel a failure
# instead of a skip; KHO_SIM_KERNEL, KHO_SIM_INITRAMFS, KHO_SIM_HOPS: see
# e2e/qemu_test.go. FUZZTIME (default 20s) bounds each fuzz target;
# FUZZTIME=0 skips fuzzing.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fuzztime=${FUZZTIME:-20s}

step_start=0
total_start=$(date +%s)
step() {
	step_start=$(date +%s)
	printf '\n=== %s\n' "$*"
}
done_step() {
	printf '=== %ds\n' "$(($(date +%s) - step_start))"
}

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
go test -race -skip '^TestQEMU' ./...
done_step

step "go test ./e2e (QEMU kexec chain)"
go test -count=1 -timeout 15m -v -run '^TestQEMU' ./e2e/
done_step

# fuzz PACKAGE TARGET: a target that is not there is an error, not a silent pass.
fuzz() {
	local pkg=$1 target=$2
	step "fuzz $pkg $target for $fuzztime"
	local listed
	listed=$(go test -list "^$target\$" "$pkg")
	if ! grep -qx "$target" <<<"$listed"; then
		echo "fuzz: $pkg has no $target"
		exit 1
	fi
	go test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$pkg"
	done_step
}
if [[ $fuzztime != 0 ]]; then
	fuzz ./pkg/fdt FuzzParse
	fuzz ./pkg/ktap FuzzParse
fi

printf '\n=== all checks passed in %ds\n' "$(($(date +%s) - total_start))"
