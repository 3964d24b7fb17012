#!/usr/bin/env bash
# fetch-kernel.sh [bookworm|sid|experimental]
#
# Fetches a Debian cloud kernel without installing it and prints the path of
# its bzImage on stdout (everything else goes to stderr).
#
#   bookworm (default)  newest linux-image-6.1.0-NN-cloud-amd64 from the suites
#                       already configured in apt.
#   sid, experimental   newest linux-binary-<version>-cloud-amd64 (Linux 7.x),
#                       read through a private apt sources list that reuses the
#                       mirror URI of the configured Debian suites; the
#                       system's apt configuration is not touched.
#
# Environment:
#   KHO_SIM_KERNEL      a bzImage to use as is instead of bookworm's.
#   KHO_SIM_KERNEL_ALT  a bzImage to use as is instead of sid's or experimental's.
#   KHO_SIM_CACHE       cache directory (default: <repo>/.cache/kernels).
#
# A kernel already unpacked in the cache is reused without network access.
set -euo pipefail

log() { printf 'fetch-kernel: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

suite=${1:-bookworm}

given=KHO_SIM_KERNEL
[[ $suite == bookworm ]] || given=KHO_SIM_KERNEL_ALT
if [[ -n ${!given:-} ]]; then
	[[ -r ${!given} ]] || die "$given=${!given} is not readable"
	printf '%s\n' "${!given}"
	exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${KHO_SIM_CACHE:-$repo/.cache/kernels}
mkdir -p "$cache"

command -v apt-get >/dev/null || die "apt-get not found: set KHO_SIM_KERNEL to a bzImage"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: set KHO_SIM_KERNEL to a bzImage"

# newest NAME_REGEX [APT_OPTIONS...]: prints the newest package whose name
# matches, by version-aware sort of the name.
newest() {
	local re=$1
	shift
	apt-cache "$@" search --names-only "$re" 2>/dev/null | awk '{print $1}' | sort -V | tail -n 1
}

# unpack PKG SUBPATH_GLOB [APT_OPTIONS...]: downloads PKG into the cache
# (unless already unpacked) and prints the kernel matching the glob.
unpack() {
	local pkg=$1 glob=$2
	shift 2
	local dir=$cache/$pkg
	local found
	found=$(compgen -G "$dir/$glob" | head -n 1 || true)
	if [[ -z $found ]]; then
		local tmp
		tmp=$(mktemp -d "$cache/.download.XXXXXX")
		log "downloading $pkg"
		# apt drops privileges to _apt for downloads; let it write here.
		chmod 0777 "$tmp"
		(cd "$tmp" && apt-get "$@" download "$pkg" >&2) || {
			rm -rf "$tmp"
			die "apt-get download $pkg failed"
		}
		rm -rf "$dir.partial"
		mkdir -p "$dir.partial"
		dpkg-deb -x "$tmp"/*.deb "$dir.partial"
		# Only the kernel image and its config are used; drop the modules.
		find "$dir.partial" -type f ! -name 'vmlinuz*' ! -name 'config*' -delete
		rm -rf "$tmp" "$dir"
		mv "$dir.partial" "$dir"
		found=$(compgen -G "$dir/$glob" | head -n 1 || true)
		[[ -n $found ]] || die "$pkg has no $glob"
	fi
	log "using $pkg"
	printf '%s\n' "$found"
}

# mirror_uri: scripts/lib/apt.sh.
# shellcheck source=lib/apt.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

case $suite in
bookworm)
	re='^linux-image-6\.1\.0-[0-9]+-cloud-amd64$'
	pkg=$(newest "$re")
	if [[ -z $pkg ]]; then
		log "no kernel in the package lists; running apt-get update"
		apt-get update >&2 || die "apt-get update failed"
		pkg=$(newest "$re")
	fi
	[[ -n $pkg ]] || die "no package matches $re in the configured suites"
	unpack "$pkg" 'boot/vmlinuz-*'
	;;
sid | experimental)
	uri=$(mirror_uri | head -n 1)
	[[ -n $uri ]] || die "no configured Debian mirror URI found in /etc/apt"
	state=$cache/apt-$suite
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	printf 'deb [signed-by=%s] %s %s main\n' "$keyring" "$uri" "$suite" >"$state/sources.list"
	opts=(
		-o "Dir::Etc::SourceList=$state/sources.list"
		-o "Dir::Etc::SourceParts=/dev/null"
		-o "Dir::State::Lists=$state/lists"
		-o "Dir::Cache=$state/cache"
		-o "APT::Sandbox::User=root"
	)
	re='^linux-binary-7\.[0-9.+~a-z-]*-cloud-amd64$'
	pkg=$(newest "$re" "${opts[@]}")
	if [[ -z $pkg ]]; then
		log "updating the private $suite package list"
		apt-get "${opts[@]}" update >&2 || die "apt-get update ($suite) failed"
		pkg=$(newest "$re" "${opts[@]}")
	fi
	[[ -n $pkg ]] || die "no package matches $re in $suite"
	unpack "$pkg" 'usr/lib/modules/*/vmlinuz' "${opts[@]}"
	;;
*)
	die "unknown suite $suite (want bookworm, sid or experimental)"
	;;
esac
