#!/usr/bin/env bash
# fetch.sh: prints the path of the kernel's own KTAP parser,
# tools/testing/kunit/kunit.py, taken from Debian's linux-source-7.2 (sid),
# on stdout (everything else goes to stderr). `python3 kunit.py parse LOG`
# needs no kernel build.
#
# Where it comes from, first found wins:
#   $KHO_SIM_KUNIT            a kunit.py to use as is
#   <cache>/<version>/        tools/testing/kunit and
#                             Documentation/dev-tools/ktap.rst, extracted
#                             earlier by this script
#   .cache/luo-kernel/*/src   the tree scripts/luo-kernel/build.sh unpacked
#   sid's linux-source-7.2    downloaded through a private apt sources list
#                             reusing the configured mirror URI, as
#                             scripts/luo-kernel/build.sh does; only the two
#                             paths above are extracted (about 30 s)
#
# Environment: KHO_SIM_KUNIT (above); KHO_SIM_CACHE (default
# <repo>/.cache/kunit).
set -euo pipefail

log() { printf 'kunit-fetch: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

if [[ -n ${KHO_SIM_KUNIT:-} ]]; then
	[[ -r $KHO_SIM_KUNIT ]] || die "KHO_SIM_KUNIT=$KHO_SIM_KUNIT is not readable"
	printf '%s\n' "$KHO_SIM_KUNIT"
	exit 0
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${KHO_SIM_CACHE:-$repo/.cache/kunit}
for k in "$cache"/*/tools/testing/kunit/kunit.py "$repo"/.cache/luo-kernel/*/src/tools/testing/kunit/kunit.py; do
	if [[ -r $k ]]; then
		printf '%s\n' "$k"
		exit 0
	fi
done

command -v apt-get >/dev/null || die "apt-get not found: set KHO_SIM_KUNIT to a kunit.py"
command -v dpkg-deb >/dev/null || die "dpkg-deb not found: set KHO_SIM_KUNIT to a kunit.py"
# shellcheck source=../lib/apt.sh
. "$repo/scripts/lib/apt.sh"

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
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
candidate() {
	apt-cache "${apt_opts[@]}" policy "$pkg" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}
version=$(candidate)
if [[ -z $version ]]; then
	log "updating the private sid package list"
	apt-get "${apt_opts[@]}" update >&2 || die "apt-get update (sid) failed"
	version=$(candidate)
fi
[[ -n $version ]] || die "$pkg not found in sid"

tmp=$(mktemp -d "$cache/.download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 0777 "$tmp" # apt drops privileges for downloads
log "downloading $pkg=$version"
(cd "$tmp" && apt-get "${apt_opts[@]}" download "$pkg=$version" >&2) || die "apt-get download $pkg=$version failed"
dpkg-deb -x "$tmp"/*.deb "$tmp/deb"
tarball=$(compgen -G "$tmp/deb/usr/src/linux-source-*.tar.*" | head -n 1 || true)
[[ -n $tarball ]] || die "$pkg has no usr/src/linux-source-*.tar.*"
mkdir -p "$tmp/out"
tar -xf "$tarball" -C "$tmp/out" --strip-components=1 --wildcards \
	'*/tools/testing/kunit/*' '*/Documentation/dev-tools/ktap.rst'
rm -rf "${cache:?}/$version"
mv "$tmp/out" "$cache/$version"
printf '%s\n' "$cache/$version/tools/testing/kunit/kunit.py"
