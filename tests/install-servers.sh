#!/usr/bin/env bash
# Courier and Cyrus for the tests' server matrix (tests/SERVERS.md), from Debian's packages,
# beside Dovecot. Run as root by `make test-deps`; idempotent, and quick when nothing changed.
#
# courier-imap, courier-pop, cyrus-imapd and cyrus-pop3d conflict with Dovecot (imap-server,
# pop3-server), so they are not installed: their .debs are unpacked with `dpkg -x` into
# $PREFIX, and the fixtures run the binaries from there with configuration of their own.
# What those packages depend on is installed with apt as usual (libraries, courier-authlib,
# the SASL modules), except a mail transport agent (default-mta | mail-transport-agent: only
# the packages' maintainer scripts send mail) and courier-authdaemon (a boot service; the
# daemon itself is in courier-authlib, and the fixture starts its own).
set -euo pipefail

PREFIX=${HELPDESK_TEST_SERVERS:-/opt/helpdesk-fetch-test-servers}
UNPACK=(courier-base courier-imap courier-pop cyrus-common cyrus-imapd cyrus-pop3d sasl2-bin)
NEVER='^(default-mta|mail-transport-agent|courier-authdaemon)$'
STAMP=$PREFIX/.installed

export DEBIAN_FRONTEND=noninteractive

candidates() {  # "package: version" for each package to unpack, as apt would take it now
    apt-cache policy "${UNPACK[@]}" |
        awk '/^[^ ]/ { package = $1 } /^ +Candidate:/ { print package, $2 }'
}

dependencies() {  # the Depends and Pre-Depends of the .debs in $1 that apt should install
    local deb
    for deb in "$1"/*.deb; do
        dpkg-deb --showformat='${Pre-Depends}, ${Depends}\n' --show "$deb"
    done | tr ',' '\n' | sed -e 's/([^)]*)//g' -e 's/:any//g' -e 's/ //g' | grep -v '^$' |
        while IFS= read -r group; do
            # A group is "a|b|c": satisfied by an MTA or by what we unpack ourselves, skip it;
            # otherwise take its first choice, as apt would.
            skip=
            for choice in ${group//|/ }; do
                if [[ $choice =~ $NEVER ]] || printf '%s\n' "${UNPACK[@]}" | grep -qx "$choice"
                then skip=1; fi
            done
            [[ -n $skip ]] || printf '%s\n' "${group%%|*}"
        done | sort -u
}

check() {  # every binary the fixtures run finds its libraries
    local missing
    missing=$(LD_LIBRARY_PATH=$PREFIX/usr/lib/x86_64-linux-gnu:$PREFIX/usr/lib \
        ldd "$PREFIX"/usr/sbin/couriertcpd "$PREFIX"/usr/bin/couriertls "$PREFIX"/usr/bin/imapd \
            "$PREFIX"/usr/lib/courier/courier/imaplogin \
            "$PREFIX"/usr/lib/courier/courier/courierpop3{d,login} \
            "$PREFIX"/usr/lib/cyrus/bin/{master,imapd,pop3d,lmtpd,reconstruct,mbpath} \
            "$PREFIX"/usr/sbin/saslpasswd2 /usr/lib/courier/courier-authlib/authdaemond \
            2>&1 | grep 'not found' || true)
    if [[ -n $missing ]]; then
        echo "install-servers: libraries missing after installation:" >&2
        echo "$missing" >&2
        exit 1
    fi
}

# Courier's authentication library reads /etc/courier and /run/courier, paths built into it;
# the fixture mounts its own directories there in a private mount namespace, and the mount
# point has to exist (the real packages create the same directory).
install -d -m 755 /etc/courier

if [[ -f $STAMP ]] && [[ "$(candidates)" == "$(cat "$STAMP")" ]]; then
    check
    echo "install-servers: Courier and Cyrus in $PREFIX are up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
if id _apt >/dev/null 2>&1; then chown _apt "$work"; fi  # apt downloads as _apt
(cd "$work" && apt-get download -q "${UNPACK[@]}")

# Only what is missing: naming an installed package to apt-get install would upgrade it.
mapfile -t needed < <(dependencies "$work" | while IFS= read -r package; do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -qx 'install ok installed' ||
        printf '%s\n' "$package"
done)
if ((${#needed[@]})); then
    apt-get install -y -q --no-install-recommends "${needed[@]}"
fi

rm -rf "$PREFIX.new"
mkdir -p "$PREFIX.new"
for deb in "$work"/*.deb; do
    dpkg -x "$deb" "$PREFIX.new"
done
candidates > "$PREFIX.new/.installed"
rm -rf "$PREFIX"
mv "$PREFIX.new" "$PREFIX"

check
echo "install-servers: Courier and Cyrus unpacked into $PREFIX"
