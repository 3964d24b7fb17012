#!/usr/bin/env bash
# build.sh [--fetch] [SERIES]: builds a small Linux kernel with KHO and LUO
# from Debian's linux-source-SERIES and prints the path of its bzImage on
# stdout (everything else goes to stderr). With --fetch it only downloads
# and unpacks the tree (network and disk, no compiler: scripts/test.sh
# fetches one series while it builds the other). SERIES (or
# $KHO_SIM_LUO_SERIES):
#
#   7.2 (default)  linux-source-7.2 from sid
#   7.3            linux-source-7.3 from trixie-backports (7.3.4-1~bpo13+1)
#
# Both are built by the same steps with the same configuration.
#
# The source package is fetched with `apt-get download` through a private apt
# sources list that reuses the mirror URI of the configured Debian suites (the
# system's apt configuration is not touched, nothing is installed from there).
# The kernel is tinyconfig plus exactly what a KHO/LUO handover needs, see
# OPTIONS below; a kernel that lost one of them in olddefconfig fails the
# build. The kernel's own LUO selftest (luo_kexec_simple) is built statically
# from the same tree, when the tree has it.
#
# Layout of the cache (default <repo>/.cache/luo-kernel, or $KHO_SIM_CACHE):
#   apt-<suite>/                 private apt state of that suite
#   <version>/src/               the unpacked tree, shared by every
#                                configuration of that version (kept for
#                                incremental rebuilds; remove it to save 2 GB)
#   <version>/<key>/bzImage      the kernel; <key> is "cfg-" and a hash of
#                                the configuration recipe below, so a
#                                changed recipe never reuses an old kernel
#   <version>/<key>/config       its .config
#   <version>/<key>/release      its uname -r (make kernelrelease)
#   <version>/<key>/luo_kexec_simple   the static selftest (if the tree has it)
#   <version>/fetch-timings      seconds spent downloading and extracting
#   <version>/<key>/timings      seconds spent configuring and building
# A cached bzImage is reused without network access once the suite's private
# package list exists (or with KHO_SIM_LUO_VERSION).
#
# Environment:
#   KHO_SIM_CACHE          cache directory (see above).
#   KHO_SIM_LUO_SERIES     SERIES when no argument is given.
#   KHO_SIM_LUO_VERSION    a Debian version of linux-source-SERIES to use
#                          instead of the newest in its suite (must be in the
#                          cache or the suite).
#   JOBS                   make -j (default: the number of CPUs).
#
# Runs as root (apt-get) on a fresh Debian 12; missing build tools are
# installed with apt-get from the configured suites.
set -euo pipefail

log() { printf 'luo-kernel: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

fetch_only=
if [[ ${1:-} == --fetch ]]; then
	fetch_only=1
	shift
fi
series=${1:-${KHO_SIM_LUO_SERIES:-7.2}}
case $series in
7.2) suite=sid ;;
7.3) suite=trixie-backports ;;
*) die "series $series: want 7.2 or 7.3" ;;
esac
pkg=linux-source-$series

# Kernel options turned on over tinyconfig. RUNTIME_TESTING_MENU guards
# LIVEUPDATE_TEST (silently dropped without it); RELOCATABLE because
# kexec_file_load rejects a bzImage that cannot be relocated; EVENTFD because
# the Go runtime's poller dies without it ("runtime: eventfd failed"), so
# the Go guest (guest/luo) cannot run as /init otherwise. PCI because
# only pcibios_resource_survey() publishes the e820 reserved ranges above
# 1 MiB in /proc/iomem (e820__reserve_resources_late): without it the
# memmap=SIZE$ADDR region kho-sim runs in is missing from /proc/iomem and
# kho-sim refuses to touch it. BUG because tinyconfig turns it off and
# without it every WARN_ON is compiled to nothing: a handover the kernel
# finds wrong (kho_restore_page on a page not in the radix tree, a bad
# folio order) must show on the console. KEXEC_HANDOVER_DEBUG makes
# kho_preserve_folio and kho_preserve_pages WARN and refuse a range that
# overlaps a scratch area of the handover this kernel received (early-boot
# memory, reused by the next kernel before it reads the tree): the check
# that tells when a handover declared scratch where the kernel later
# allocated what it preserves.
OPTIONS=(
	64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP
	BINFMT_ELF PROC_FS SYSFS DEVTMPFS TMPFS SHMEM MEMFD_CREATE FUTEX EPOLL
	MULTIUSER RELOCATABLE KEXEC_FILE KEXEC_HANDOVER KEXEC_HANDOVER_DEBUGFS
	DEBUG_FS LIVEUPDATE LIVEUPDATE_MEMFD RUNTIME_TESTING_MENU LIVEUPDATE_TEST
	DEVMEM EVENTFD PCI BUG KEXEC_HANDOVER_DEBUG
)
# Turned off so that /dev/mem can read the handover anywhere in RAM.
OPTIONS_OFF=(STRICT_DEVMEM IO_STRICT_DEVMEM)
# How the selftest is compiled (part of the recipe).
SELFTEST_CFLAGS=(-static -O2 -Wall)

# The cache key: everything above that decides the build's output.
key=cfg-$(printf '%s\n' tinyconfig "on ${OPTIONS[*]}" "off ${OPTIONS_OFF[*]}" "selftest ${SELFTEST_CFLAGS[*]}" |
	sha256sum | cut -c1-12)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${KHO_SIM_CACHE:-$repo/.cache/luo-kernel}
jobs=${JOBS:-$(nproc)}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# check_config FILE: prints each option of the recipe that FILE does not
# have as asked (!NAME: an option that should be off is on).
check_config() {
	local o
	for o in "${OPTIONS[@]}"; do
		grep -qx "CONFIG_$o=y" "$1" || printf '%s\n' "$o"
	done
	for o in "${OPTIONS_OFF[@]}"; do
		if grep -qx "CONFIG_$o=y" "$1"; then printf '!%s\n' "$o"; fi
	done
}

# cached VERSION: prints the cached bzImage of VERSION for this recipe, if
# complete and its config has every option as asked.
cached() {
	local dir=$cache/$1/$key bad
	[[ -s $dir/bzImage && -s $dir/config && -s $dir/release ]] || return 1
	bad=$(check_config "$dir/config")
	if [[ -n $bad ]]; then
		log "cached $1/$key lacks $(echo $bad): rebuilding"
		return 1
	fi
	printf '%s\n' "$dir/bzImage"
}

# mirror_uri: scripts/lib/apt.sh, shared with scripts/fetch-kernel.sh.
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

# A pinned version already built needs nothing else.
if [[ -z $fetch_only && -n ${KHO_SIM_LUO_VERSION:-} ]] && cached "$KHO_SIM_LUO_VERSION"; then
	exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

state=$cache/apt-$suite
mapfile -t apt_opts < <(private_apt_options "$state" "$suite") || true
((${#apt_opts[@]} > 0)) || die "no configured Debian mirror URI found in /etc/apt"

# candidate prints the version apt would download, from the private lists.
candidate() {
	apt-cache "${apt_opts[@]}" policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

version=${KHO_SIM_LUO_VERSION:-}
if [[ -z $version ]]; then
	version=$(candidate)
	if [[ -z $version ]]; then
		log "updating the private $suite package list"
		t=$(now)
		apt-get "${apt_opts[@]}" update >&2 || die "apt-get update ($suite) failed"
		log "apt-get update: $(elapsed "$t") s"
		version=$(candidate)
	fi
	[[ -n $version ]] || die "$pkg not found in $suite"
fi
vdir=$cache/$version
src=$vdir/src
if [[ -n $fetch_only && -f $src/Makefile ]] || { [[ -z $fetch_only ]] && cached "$version"; }; then
	[[ -n $fetch_only ]] && log "$pkg $version already unpacked in $src"
	exit 0
fi
dir=$vdir/$key

# Tools, installed from the configured (bookworm) suites if missing: xz to
# unpack the tree, the rest to build (not needed with --fetch).
need=()
tools=(xz:xz-utils)
[[ -n $fetch_only ]] || tools+=(gcc:build-essential make:build-essential bc:bc bison:bison flex:flex)
for tool in "${tools[@]}"; do
	command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
if [[ -z $fetch_only ]]; then
	[[ -r /usr/include/gelf.h ]] || need+=(libelf-dev)
	[[ -r /usr/include/openssl/opensslv.h ]] || need+=(libssl-dev)
	[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
fi
if ((${#need[@]} > 0)); then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; } ||
		die "could not install ${need[*]}"
fi

if [[ ! -f $src/Makefile ]]; then
	mkdir -p "$vdir"
	: >"$vdir/fetch-timings"
	t=$(now)
	dl=$vdir/download
	rm -rf "$dl"
	mkdir -p "$dl"
	# apt drops privileges for downloads; let it write here.
	chmod 0777 "$dl"
	log "downloading $pkg=$version from $suite"
	(cd "$dl" && apt-get "${apt_opts[@]}" download "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
	log "download: $(elapsed "$t") s ($(du -sh "$dl" | cut -f1))"
	printf 'download %s\n' "$(elapsed "$t")" >>"$vdir/fetch-timings"

	t=$(now)
	rm -rf "$vdir/deb" "$src.partial"
	mkdir -p "$vdir/deb" "$src.partial"
	dpkg-deb -x "$dl"/*.deb "$vdir/deb"
	tarball=$(compgen -G "$vdir/deb/usr/src/linux-source-*.tar.*" | head -n 1 || true)
	[[ -n $tarball ]] || die "$pkg has no usr/src/linux-source-*.tar.*"
	# An x86 build never reads Documentation or the other architectures,
	# except Documentation/Kconfig and arch/*/crypto/Kconfig (sourced by
	# Kconfig) and arch/um (fs/hostfs includes its rules).
	skip=(--exclude='*/Documentation/[!K]*' --exclude-vcs)
	for a in alpha arc arm arm64 csky hexagon loongarch m68k microblaze mips nios2 openrisc parisc powerpc riscv s390 sh sparc xtensa; do
		skip+=("--exclude=*/arch/$a/[!c]*" "--exclude=*/arch/$a/c[!r]*" "--exclude=*/arch/$a/crypto/[!K]*")
	done
	tar -xf "$tarball" -C "$src.partial" --strip-components=1 "${skip[@]}"
	rm -rf "$vdir/deb" "$dl"
	mv "$src.partial" "$src"
	log "extract: $(elapsed "$t") s"
	printf 'extract %s\n' "$(elapsed "$t")" >>"$vdir/fetch-timings"
fi
if [[ -n $fetch_only ]]; then
	log "$pkg $version unpacked in $src"
	exit 0
fi
mkdir -p "$dir"
: >"$dir/timings"

t=$(now)
cd "$src"
make -s tinyconfig >&2
enable=()
for o in "${OPTIONS[@]}"; do enable+=(--enable "$o"); done
disable=()
for o in "${OPTIONS_OFF[@]}"; do disable+=(--disable "$o"); done
scripts/config "${enable[@]}" "${disable[@]}"
make -s olddefconfig >&2
# An option Kconfig does not know, or whose dependencies are not met, is
# dropped here without a word from olddefconfig.
bad=$(check_config .config)
[[ -z $bad ]] || die "olddefconfig dropped (or kept) options: $(echo $bad)"
log "configure: $(elapsed "$t") s"
printf 'configure %s\n' "$(elapsed "$t")" >>"$dir/timings"

t=$(now)
log "make -j$jobs bzImage ($pkg $version, $key)"
make -s -j"$jobs" bzImage >&2 || die "make bzImage failed"
log "build: $(elapsed "$t") s ($(stat -c %s arch/x86/boot/bzImage) bytes)"
printf 'build %s\n' "$(elapsed "$t")" >>"$dir/timings"

# The kernel's selftest, built statically against this tree's uapi header.
# Its helpers are luo_test_utils.c in 7.2 and lib/lu_utils.c (with
# lib/include/libliveupdate.h) in 7.3.
st=tools/testing/selftests/liveupdate
if [[ -f $st/luo_kexec_simple.c ]]; then
	inc=$(mktemp -d)
	mkdir -p "$inc/linux"
	cp include/uapi/linux/liveupdate.h "$inc/linux/"
	extra=()
	[[ -f $st/luo_test_utils.c ]] && extra+=("$st/luo_test_utils.c")
	for f in "$st"/lib/*.c; do [[ -f $f ]] && extra+=("$f"); done
	[[ -d $st/lib/include ]] && extra+=(-I "$st/lib/include")
	if gcc "${SELFTEST_CFLAGS[@]}" -I "$inc" -I "$st" -I tools/testing/selftests -I tools/include \
		-o "$dir/luo_kexec_simple.partial" "$st/luo_kexec_simple.c" "${extra[@]}" >&2; then
		mv "$dir/luo_kexec_simple.partial" "$dir/luo_kexec_simple"
		log "selftest: $dir/luo_kexec_simple"
	else
		die "selftest luo_kexec_simple did not build (the kernel did)"
	fi
	rm -rf "$inc"
fi

cp .config "$dir/config.partial"
cp arch/x86/boot/bzImage "$dir/bzImage.partial"
make -s kernelrelease >"$dir/release"
mv "$dir/config.partial" "$dir/config"
mv "$dir/bzImage.partial" "$dir/bzImage"
cat "$vdir/fetch-timings" "$dir/timings" >&2 2>/dev/null || true
printf '%s\n' "$dir/bzImage"
