#!/usr/bin/env bash
# Installs the Debian packages the tests use as real peers: OpenSSH (sftp client
# and sshd), lftp and curl (FTP clients), vsftpd (FTP server), swaks (SMTP client),
# dovecot (IMAP server). Needs root (as on CI) or sudo; skips what is present.
set -euo pipefail
packages=(openssh-client openssh-server lftp curl swaks msmtp vsftpd dovecot-imapd sshpass)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
