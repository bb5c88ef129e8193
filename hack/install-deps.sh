#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers: OpenSSH (sftp client,
# sshd and sftp-server), lftp and curl (FTP clients), vsftpd (FTP server), swaks
# and msmtp (SMTP clients; swaks with Net::SSLeay and IO::Socket::SSL for
# `swaks --tls`), dovecot
# (IMAP server), Lua 5.1 with dkjson (to run the Argo CD health check in
# deploy/argocd/ as Argo CD's gopher-lua does), GnuPG, and tmux (a real terminal for
# the `connectors new` wizard's tests). Needs root (as on CI) or sudo; skips what is
# present. Prometheus is unpacked too, for its promtool: the chart's alert rules are
# checked and unit-tested with it (no Prometheus server runs).
#
# proftpd (FTP, FTPS and its own SFTP, mod_sftp, in proftpd-mod-crypto) and
# pure-ftpd conflict with vsftpd as Debian packages (each provides ftp-server),
# so they are unpacked from Debian's .deb files into $SERVERS instead of being
# installed as system services: nothing listens on port 21, and the tests start
# their own instances on free loopback ports with their own configuration.
set -euo pipefail
SERVERS=${CONNECTORS_TEST_SERVERS:-/opt/connectors-test-servers}
packages=(openssh-client openssh-server openssh-sftp-server lftp curl swaks msmtp
  libnet-ssleay-perl libio-socket-ssl-perl vsftpd dovecot-imapd sshpass lua5.1 lua-dkjson tmux
  # gpg and gpg-agent: the product's OpenPGP (operator/connectors/pgp.py) and the
  # partner's own gpg in the tests
  gnupg
  # libraries proftpd and pure-ftpd need, installed as usual
  libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23 libidn2-0)
unpacked=(proftpd-core proftpd-mod-crypto pure-ftpd prometheus)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
updated=""
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  updated=yes
  # Services the packages would start (sshd, vsftpd, dovecot) are not needed:
  # the tests run their own. policy-rc.d keeps them from starting on install.
  policy=/usr/sbin/policy-rc.d
  added_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    added_policy=yes
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
  [ -z "$added_policy" ] || $sudo rm -f "$policy"
fi
if [ ! -x "$SERVERS/usr/sbin/proftpd" ] || [ ! -x "$SERVERS/usr/sbin/pure-ftpd" ] \
    || [ ! -x "$SERVERS/usr/bin/promtool" ]; then
  echo "install-deps: unpacking ${unpacked[*]} into $SERVERS" >&2
  [ -n "$updated" ] || $sudo apt-get update -qq
  work=$(mktemp -d)
  chmod 777 "$work"  # apt downloads as the _apt user
  (cd "$work" && $sudo apt-get download -qq "${unpacked[@]}")
  $sudo mkdir -p "$SERVERS"
  for deb in "$work"/*.deb; do $sudo dpkg-deb -x "$deb" "$SERVERS"; done
  rm -rf "$work"
fi
