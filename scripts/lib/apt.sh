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
