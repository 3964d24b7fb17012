# apt.sh: shell functions shared by the scripts that fetch Debian packages.
# Source it; it defines functions only.

# mirror_uri prints the URI of the configured suites that carry bookworm's
# main archive (not -security), from deb822 .sources or one-line .list files.
mirror_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk '
			/^[[:space:]]*$/ { if (uri != "" && suites ~ /(^| )bookworm( |$)/) { print uri; exit } uri = ""; suites = ""; next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { $1 = ""; suites = $0 " " }
			END { if (uri != "" && suites ~ /(^| )bookworm( |$)/) print uri }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		awk '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == "bookworm") print $i }' "$f"
	done
}

# private_apt_options STATE SUITE: sets up STATE as the private apt state of
# SUITE (main, from the first URI mirror_uri finds, signed by Debian's
# archive keyring) and prints the apt-get/apt-cache options that use it, one
# a line. The system's apt configuration is neither read for sources nor
# changed. Prints nothing and fails if no mirror URI is configured.
private_apt_options() {
	local state=$1 suite=$2 uri
	mkdir -p "$state/lists/partial" "$state/cache/archives/partial"
	if [[ ! -s $state/sources.list ]]; then
		uri=$(mirror_uri | head -n 1)
		[[ -n $uri ]] || return 1
		printf 'deb [signed-by=%s] %s %s main\n' /usr/share/keyrings/debian-archive-keyring.gpg "$uri" "$suite" >"$state/sources.list"
	fi
	printf '%s\n' \
		-o "Dir::Etc::SourceList=$state/sources.list" \
		-o "Dir::Etc::SourceParts=/dev/null" \
		-o "Dir::State::Lists=$state/lists" \
		-o "Dir::Cache=$state/cache" \
		-o "APT::Sandbox::User=root"
}
