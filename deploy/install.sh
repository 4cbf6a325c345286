#!/usr/bin/env bash
# Install rvpp as VPP: `rvpp` becomes /usr/bin/vpp and `rvppctl` /usr/bin/vppctl, on a host or
# in a container image (deploy/Dockerfile runs it). vpp-manager keeps forking
# `/usr/bin/vpp -c /etc/vpp/startup.conf` and calicovppctl keeps running `vppctl`.
#
#   install.sh [--rvpp FILE] [--rvppctl FILE] [--copy | --symlink] [--prefix DIR] [--force]
#   install.sh --uninstall [--prefix DIR]
#
# * rvpp and rvppctl are copied to <prefix>/usr/bin/rvpp and <prefix>/usr/bin/rvppctl; vpp and
#   vppctl are copies of them (--copy, the default) or relative symlinks to them (--symlink).
# * Idempotent: running it again with the same binaries changes nothing; with new ones it
#   updates what it installed before.
# * It never replaces a file it did not install (e.g. a real VPP's /usr/bin/vpp) unless
#   --force; then the original is kept as <name>.rvpp-orig and --uninstall puts it back.
# * What it installed is listed, with checksums, in <prefix>/var/lib/rvpp/install-manifest.
#   --uninstall removes exactly those files, and only while they are unchanged.
# * Default sources: ./rvpp and ./rvppctl next to this script, else target/release/ of the
#   repository this script is in.
set -euo pipefail

prog=${0##*/}
die() {
	echo "$prog: $*" >&2
	exit 1
}
say() { echo "$prog: $*"; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

prefix=""
mode=copy
force=0
uninstall=0
rvpp_src=""
rvppctl_src=""
while [ $# -gt 0 ]; do
	case "$1" in
	--prefix) prefix=${2:?--prefix needs a directory}; shift ;;
	--prefix=*) prefix=${1#*=} ;;
	--rvpp) rvpp_src=${2:?--rvpp needs a file}; shift ;;
	--rvpp=*) rvpp_src=${1#*=} ;;
	--rvppctl) rvppctl_src=${2:?--rvppctl needs a file}; shift ;;
	--rvppctl=*) rvppctl_src=${1#*=} ;;
	--copy) mode=copy ;;
	--symlink) mode=symlink ;;
	--force) force=1 ;;
	--uninstall) uninstall=1 ;;
	-h | --help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
	shift
done

prefix=${prefix%/}
bindir="$prefix/usr/bin"
statedir="$prefix/var/lib/rvpp"
manifest="$statedir/install-manifest"
backup_suffix=".rvpp-orig"

sum() { sha256sum "$1" | cut -d' ' -f1; }

# Manifest lines: `file <path> <sha256>`, `link <path> <target>`, `backup <path>`; paths are
# relative to the prefix (absolute, starting with /usr/bin).
manifest_entry() { # path -> "kind value" or nothing
	[ -f "$manifest" ] || return 0
	awk -v p="$1" '$2 == p && ($1 == "file" || $1 == "link") { print $1, $3 }' "$manifest" | tail -n 1
}

# Whether <prefix>$1 is what we installed there (unchanged since), or absent.
ours_or_absent() {
	local f="$prefix$1" e
	[ -e "$f" ] || [ -L "$f" ] || return 0
	e=$(manifest_entry "$1")
	case "$e" in
	"link "*) [ -L "$f" ] && [ "$(readlink "$f")" = "${e#link }" ] ;;
	"file "*) [ -f "$f" ] && [ ! -L "$f" ] && [ "$(sum "$f")" = "${e#file }" ] ;;
	*) return 1 ;;
	esac
}

# Whether <prefix>$1 already is exactly what we are about to install.
already() { # path kind value
	local f="$prefix$1"
	case "$2" in
	link) [ -L "$f" ] && [ "$(readlink "$f")" = "$3" ] ;;
	file) [ -f "$f" ] && [ ! -L "$f" ] && [ "$(sum "$f")" = "$3" ] ;;
	esac
}

new_manifest=""
record() { new_manifest+="$*"$'\n'; }

# Install one path: kind "file" (value = source file) or "link" (value = link target).
place() { # path kind value
	local path=$1 kind=$2 value=$3 f="$prefix$1" want tmp
	if [ "$kind" = file ]; then want=$(sum "$value"); else want=$value; fi
	if [ -f "$manifest" ] && grep -q "^backup $path\$" "$manifest"; then
		record "backup $path"
	fi
	if already "$path" "$kind" "$want"; then
		record "$kind $path $want"
		say "$f: up to date"
		return
	fi
	if ! ours_or_absent "$path"; then
		if [ "$force" != 1 ]; then
			die "$f exists and was not installed by $prog (a VPP binary?); not replacing it without --force"
		fi
		if [ -e "$f$backup_suffix" ] || [ -L "$f$backup_suffix" ]; then
			die "$f: both it and $f$backup_suffix exist; move one away first"
		fi
		mv -- "$f" "$f$backup_suffix"
		record "backup $path"
		say "$f: kept the original as $f$backup_suffix"
	fi
	tmp="$f.rvpp-new.$$"
	rm -f -- "$tmp"
	if [ "$kind" = file ]; then
		cp -- "$value" "$tmp"
		chmod 0755 "$tmp"
	else
		ln -s -- "$value" "$tmp"
	fi
	mv -f -T -- "$tmp" "$f"
	record "$kind $path $want"
	if [ "$kind" = link ]; then say "$f: installed (-> $value)"; else say "$f: installed"; fi
}

do_uninstall() {
	[ -f "$manifest" ] || die "nothing to uninstall: no $manifest"
	local kind path value f kept=0
	# Installed files first, then restore the backups they had replaced.
	while read -r kind path value; do
		f="$prefix$path"
		case "$kind" in
		file | link)
			if ! { [ -e "$f" ] || [ -L "$f" ]; }; then
				continue
			elif ours_or_absent "$path"; then
				rm -f -- "$f"
				say "$f: removed"
			else
				say "$f: changed since it was installed; left in place"
				kept=1
			fi
			;;
		esac
	done <"$manifest"
	while read -r kind path value; do
		f="$prefix$path"
		if [ "$kind" = backup ] && [ -e "$f$backup_suffix" ]; then
			if [ -e "$f" ] || [ -L "$f" ]; then
				say "$f$backup_suffix: not restored, $f is in the way"
				kept=1
			else
				mv -- "$f$backup_suffix" "$f"
				say "$f: original restored"
			fi
		fi
	done <"$manifest"
	if [ "$kept" = 0 ]; then
		rm -f -- "$manifest"
		rmdir -- "$statedir" 2>/dev/null || true
	else
		say "kept $manifest for what is left"
	fi
}

if [ "$uninstall" = 1 ]; then
	do_uninstall
	exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
find_src() { # name given
	if [ -n "$2" ]; then
		echo "$2"
	elif [ -x "$here/$1" ]; then
		echo "$here/$1"
	elif [ -x "$here/../target/release/$1" ]; then
		echo "$here/../target/release/$1"
	else
		die "no $1 binary: pass --$1 FILE (or build with cargo build --release)"
	fi
}
rvpp_src=$(find_src rvpp "$rvpp_src")
rvppctl_src=$(find_src rvppctl "$rvppctl_src")
for s in "$rvpp_src" "$rvppctl_src"; do
	if [ ! -f "$s" ] || [ ! -x "$s" ]; then die "$s: not an executable file"; fi
done
# Refuse to "install" a real VPP as rvpp: rvpp identifies itself in --version.
"$rvpp_src" --version 2>/dev/null | grep -q rvpp || die "$rvpp_src: not an rvpp binary (--version)"

mkdir -p -- "$bindir" "$statedir"
# Copy the sources first (reading them before anything they might be is replaced).
src_tmp=$(mktemp -d "$statedir/.src.XXXXXX")
trap 'rm -rf -- "$src_tmp"' EXIT
cp -- "$rvpp_src" "$src_tmp/rvpp"
cp -- "$rvppctl_src" "$src_tmp/rvppctl"

# What goes where: `path kind value` (value: source file, or link target).
targets() {
	echo "/usr/bin/rvpp file $src_tmp/rvpp"
	echo "/usr/bin/rvppctl file $src_tmp/rvppctl"
	if [ "$mode" = symlink ]; then
		echo "/usr/bin/vpp link rvpp"
		echo "/usr/bin/vppctl link rvppctl"
	else
		echo "/usr/bin/vpp file $src_tmp/rvpp"
		echo "/usr/bin/vppctl file $src_tmp/rvppctl"
	fi
}

# Check every target before changing anything, so a refusal leaves no partial install.
if [ "$force" != 1 ]; then
	while read -r path kind value; do
		if [ "$kind" = file ]; then want=$(sum "$value"); else want=$value; fi
		if ! already "$path" "$kind" "$want" && ! ours_or_absent "$path"; then
			die "$prefix$path exists and was not installed by $prog (a VPP binary?); not replacing it without --force"
		fi
	done < <(targets)
fi
while read -r path kind value; do
	place "$path" "$kind" "$value"
done < <(targets)

printf '%s' "$new_manifest" >"$manifest.new"
mv -f -- "$manifest.new" "$manifest"
say "done: $("$bindir/vpp" --version 2>/dev/null || echo "vpp installed in $bindir")"
