#!/usr/bin/env bash
# build.sh: builds a small Linux 7.2 kernel with KHO and LUO from Debian's
# linux-source-7.2 (sid) and prints the path of its bzImage on stdout
# (everything else goes to stderr).
#
# The source package is fetched with `apt-get download` through a private apt
# sources list that reuses the mirror URI of the configured Debian suites (the
# system's apt configuration is not touched, nothing is installed from sid).
# The kernel is tinyconfig plus exactly what a KHO/LUO handover needs, see
# OPTIONS below; a kernel that lost one of them in olddefconfig fails the
# build. The kernel's own LUO selftest (luo_kexec_simple) is built statically
# from the same tree, when the tree has it.
#
# Layout of the cache (default <repo>/.cache/luo-kernel, or $KHO_SIM_CACHE):
#   apt-sid/               private apt state
#   <version>/bzImage      the kernel
#   <version>/config       its .config
#   <version>/luo_kexec_simple   the static selftest (if the tree has it)
#   <version>/timings      seconds spent downloading, extracting, building
#   <version>/src/         the unpacked tree (kept for incremental rebuilds;
#                          remove it to save about 2 GB)
# A cached bzImage is reused without network access.
#
# Environment:
#   KHO_SIM_CACHE          cache directory (see above).
#   KHO_SIM_LUO_VERSION    a Debian version of linux-source-7.2 to use instead
#                          of the newest in sid (must be in the cache or sid).
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

# Kernel options turned on over tinyconfig. RUNTIME_TESTING_MENU guards
# LIVEUPDATE_TEST (silently dropped without it); RELOCATABLE because
# kexec_file_load rejects a bzImage that cannot be relocated; EVENTFD because
# the Go runtime's poller dies without it ("runtime: eventfd failed"), so
# the Go guest (guest/luo) cannot run as /init otherwise. PCI because
# only pcibios_resource_survey() publishes the e820 reserved ranges above
# 1 MiB in /proc/iomem (e820__reserve_resources_late): without it the
# memmap=SIZE$ADDR region kho-sim runs in is missing from /proc/iomem and
# kho-sim refuses to touch it.
OPTIONS=(
	64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE BLK_DEV_INITRD RD_GZIP
	BINFMT_ELF PROC_FS SYSFS DEVTMPFS TMPFS SHMEM MEMFD_CREATE FUTEX EPOLL
	MULTIUSER RELOCATABLE KEXEC_FILE KEXEC_HANDOVER KEXEC_HANDOVER_DEBUGFS
	DEBUG_FS LIVEUPDATE LIVEUPDATE_MEMFD RUNTIME_TESTING_MENU LIVEUPDATE_TEST
	DEVMEM EVENTFD PCI
)
# Turned off so that /dev/mem can read the handover anywhere in RAM.
OPTIONS_OFF=(STRICT_DEVMEM IO_STRICT_DEVMEM)

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${KHO_SIM_CACHE:-$repo/.cache/luo-kernel}
jobs=${JOBS:-$(nproc)}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# cached VERSION: prints the cached bzImage of VERSION, if complete and
# built with every option of OPTIONS (a kernel built before an option was
# added is rebuilt, incrementally from the kept tree).
cached() {
	local dir=$cache/$1 o
	[[ -s $dir/bzImage && -s $dir/config ]] || return 1
	for o in "${OPTIONS[@]}"; do
		if ! grep -qx "CONFIG_$o=y" "$dir/config"; then
			log "cached $1 lacks CONFIG_$o: rebuilding"
			return 1
		fi
	done
	printf '%s\n' "$dir/bzImage"
}

# mirror_uri: scripts/lib/apt.sh, shared with scripts/fetch-kernel.sh.
# shellcheck source=../lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"

# A pinned version already built needs nothing else.
if [[ -n ${KHO_SIM_LUO_VERSION:-} ]] && cached "$KHO_SIM_LUO_VERSION"; then
	exit 0
fi

command -v apt-get >/dev/null || die "apt-get not found"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

state=$cache/apt-sid
mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
if [[ ! -s $state/sources.list ]]; then
	uri=$(mirror_uri | head -n 1)
	[[ -n $uri ]] || die "no configured Debian mirror URI found in /etc/apt"
	printf 'deb [signed-by=%s] %s sid main\n' /usr/share/keyrings/debian-archive-keyring.gpg "$uri" >"$state/sources.list"
fi
apt_opts=(
	-o "Dir::Etc::SourceList=$state/sources.list"
	-o "Dir::Etc::SourceParts=/dev/null"
	-o "Dir::State::Lists=$state/lists"
	-o "Dir::Cache=$state/cache"
	-o "APT::Sandbox::User=root"
)
pkg=linux-source-7.2

# candidate prints the version apt would download, from the private lists.
candidate() {
	apt-cache "${apt_opts[@]}" policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

version=${KHO_SIM_LUO_VERSION:-}
if [[ -z $version ]]; then
	version=$(candidate)
	if [[ -z $version ]]; then
		log "updating the private sid package list"
		t=$(now)
		apt-get "${apt_opts[@]}" update >&2 || die "apt-get update (sid) failed"
		log "apt-get update: $(elapsed "$t") s"
		version=$(candidate)
	fi
	[[ -n $version ]] || die "$pkg not found in sid"
fi
if cached "$version"; then
	exit 0
fi
dir=$cache/$version
mkdir -p "$dir"
: >"$dir/timings"

# Build tools, installed from the configured (bookworm) suites if missing.
need=()
for tool in gcc:build-essential make:build-essential bc:bc bison:bison flex:flex xz:xz-utils; do
	command -v "${tool%%:*}" >/dev/null || need+=("${tool#*:}")
done
[[ -r /usr/include/gelf.h ]] || need+=(libelf-dev)
[[ -r /usr/include/openssl/opensslv.h ]] || need+=(libssl-dev)
[[ -e /usr/lib/x86_64-linux-gnu/libc.a ]] || need+=(libc6-dev)
if ((${#need[@]} > 0)); then
	mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; } ||
		die "could not install ${need[*]}"
fi

src=$dir/src
if [[ ! -f $src/Makefile ]]; then
	t=$(now)
	dl=$dir/download
	rm -rf "$dl"
	mkdir -p "$dl"
	# apt drops privileges for downloads; let it write here.
	chmod 0777 "$dl"
	log "downloading $pkg=$version"
	(cd "$dl" && apt-get "${apt_opts[@]}" download "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
	log "download: $(elapsed "$t") s ($(du -sh "$dl" | cut -f1))"
	printf 'download %s\n' "$(elapsed "$t")" >>"$dir/timings"

	t=$(now)
	rm -rf "$dir/deb" "$src.partial"
	mkdir -p "$dir/deb" "$src.partial"
	dpkg-deb -x "$dl"/*.deb "$dir/deb"
	tarball=$(compgen -G "$dir/deb/usr/src/linux-source-*.tar.*" | head -n 1 || true)
	[[ -n $tarball ]] || die "$pkg has no usr/src/linux-source-*.tar.*"
	# An x86 build never reads Documentation or the other architectures,
	# except Documentation/Kconfig and arch/*/crypto/Kconfig (sourced by
	# Kconfig) and arch/um (fs/hostfs includes its rules).
	skip=(--exclude='*/Documentation/[!K]*' --exclude-vcs)
	for a in alpha arc arm arm64 csky hexagon loongarch m68k microblaze mips nios2 openrisc parisc powerpc riscv s390 sh sparc xtensa; do
		skip+=("--exclude=*/arch/$a/[!c]*" "--exclude=*/arch/$a/c[!r]*" "--exclude=*/arch/$a/crypto/[!K]*")
	done
	tar -xf "$tarball" -C "$src.partial" --strip-components=1 "${skip[@]}"
	rm -rf "$dir/deb" "$dl"
	mv "$src.partial" "$src"
	log "extract: $(elapsed "$t") s"
	printf 'extract %s\n' "$(elapsed "$t")" >>"$dir/timings"
fi

t=$(now)
cd "$src"
make -s tinyconfig >&2
enable=()
for o in "${OPTIONS[@]}"; do enable+=(--enable "$o"); done
disable=()
for o in "${OPTIONS_OFF[@]}"; do disable+=(--disable "$o"); done
scripts/config "${enable[@]}" "${disable[@]}"
make -s olddefconfig >&2
missing=()
for o in "${OPTIONS[@]}"; do
	if ! grep -qx "CONFIG_$o=y" .config; then missing+=("$o"); fi
done
for o in "${OPTIONS_OFF[@]}"; do
	if grep -qx "CONFIG_$o=y" .config; then missing+=("!$o"); fi
done
((${#missing[@]} == 0)) || die "olddefconfig dropped (or kept) options: ${missing[*]}"
log "configure: $(elapsed "$t") s"
printf 'configure %s\n' "$(elapsed "$t")" >>"$dir/timings"

t=$(now)
log "make -j$jobs bzImage"
make -s -j"$jobs" bzImage >&2 || die "make bzImage failed"
log "build: $(elapsed "$t") s ($(stat -c %s arch/x86/boot/bzImage) bytes)"
printf 'build %s\n' "$(elapsed "$t")" >>"$dir/timings"

# The kernel's selftest, built statically against this tree's uapi header.
st=tools/testing/selftests/liveupdate
if [[ -f $st/luo_kexec_simple.c ]]; then
	inc=$(mktemp -d)
	mkdir -p "$inc/linux"
	cp include/uapi/linux/liveupdate.h "$inc/linux/"
	extra=()
	[[ -f $st/luo_test_utils.c ]] && extra+=("$st/luo_test_utils.c")
	if gcc -static -O2 -Wall -I "$inc" -I "$st" -I tools/testing/selftests -I tools/include \
		-o "$dir/luo_kexec_simple.partial" "$st/luo_kexec_simple.c" "${extra[@]}" >&2; then
		mv "$dir/luo_kexec_simple.partial" "$dir/luo_kexec_simple"
		log "selftest: $dir/luo_kexec_simple"
	else
		log "selftest luo_kexec_simple did not build (the kernel did)"
	fi
	rm -rf "$inc"
fi

cp .config "$dir/config.partial"
cp arch/x86/boot/bzImage "$dir/bzImage.partial"
mv "$dir/config.partial" "$dir/config"
mv "$dir/bzImage.partial" "$dir/bzImage"
cat "$dir/timings" >&2
printf '%s\n' "$dir/bzImage"
