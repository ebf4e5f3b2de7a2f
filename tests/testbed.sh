#!/usr/bin/env bash
# Test bed of real mail servers for mailharness, on loopback only.
#
#   tests/testbed.sh install          apt-get install what is missing (no services are started)
#   tests/testbed.sh up               start private Postfix + Dovecot + dnsmasq, write <state>/env
#   tests/testbed.sh throttle [IP...] throttle exactly these client IPs (none = nobody throttled)
#   tests/testbed.sh status           say what runs
#   tests/testbed.sh down             stop what `up` started
#
# State lives in $MH_TESTBED_DIR (default: tests/.testbed/ under the repository root).
# Everything binds to 127.0.0.1 only; nothing is forwarded or relayed anywhere else.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${SCRIPT_DIR}/.." && pwd)"
STATE="${MH_TESTBED_DIR:-${REPO_ROOT}/tests/.testbed}"
# Postfix and Dovecot need an absolute path.
case "${STATE}" in
    /*) ;;
    *) STATE="$(pwd)/${STATE}" ;;
esac

DOMAIN="testbed.example"
MX_HOST="mx.testbed.example"
USERS=(qa1 qa2 qa3)
THROTTLED_IP="127.0.0.3"
# Postfix demands TLS from this client (reject_plaintext_session), as a connector that requires TLS
# does in Microsoft 365; no other test sends from it.
TLS_REQUIRED_IP="127.0.0.6"
IMAP_PASSWORD="${MH_TESTBED_IMAP_PASSWORD:-testbed-secret}"
# Owner of the Maildirs, shared by Postfix's virtual(8) agent and Dovecot. Numeric on purpose: no
# passwd entry is needed, and it must not be Dovecot's internal user.
MAIL_UID="${MH_TESTBED_MAIL_UID:-5000}"
MAIL_GID="${MH_TESTBED_MAIL_GID:-5000}"

PF_DIR="${STATE}/postfix"
PF_CONF="${PF_DIR}/conf"
PF_QUEUE="${PF_DIR}/queue"
PF_DATA="${PF_DIR}/data"
PF_LOG="${PF_DIR}/maillog"
ACCESS_TABLE="${PF_DIR}/client_access"
TLS_TABLE="${PF_DIR}/tls_required.cidr"
DC_DIR="${STATE}/dovecot"
DC_CONF="${DC_DIR}/dovecot.conf"
DC_RUN="${DC_DIR}/run"
DC_LOG="${DC_DIR}/dovecot.log"
DNS_DIR="${STATE}/dnsmasq"
DNS_PID="${DNS_DIR}/dnsmasq.pid"
DNS_LOG="${DNS_DIR}/dnsmasq.log"
TLS_DIR="${STATE}/tls"
TLS_CERT="${TLS_DIR}/cert.pem"
TLS_KEY="${TLS_DIR}/key.pem"
MAIL_ROOT="${STATE}/mail"
ENV_FILE="${STATE}/env"

# libxml2-utils: xmllint, which validates junit.xml against the published JUnit schema.
PACKAGES=(postfix dovecot-imapd dnsmasq-base swaks dnsutils curl python3 openssl libxml2-utils)

log() { printf 'testbed: %s\n' "$*" >&2; }
# Set while `up` runs: a failed start stops what it already started (logs stay in the state dir).
UP_IN_PROGRESS=0
die() {
    printf 'testbed: error: %s\n' "$*" >&2
    if [[ ${UP_IN_PROGRESS} -eq 1 ]]; then
        UP_IN_PROGRESS=0
        log "stopping what was started; logs are kept under ${STATE}"
        cmd_down || true
    fi
    exit 1
}

usage() {
    sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

need_root() {
    [[ "$(id -u)" -eq 0 ]] || die "must run as root (Postfix and Dovecot start as root and drop privileges)"
}

# ---------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------
cmd_install() {
    need_root
    local missing=() pkg status
    for pkg in "${PACKAGES[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "${pkg}" 2>/dev/null || true)"
        if [[ "${status}" != "installed" ]]; then
            missing+=("${pkg}")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "all packages present: ${PACKAGES[*]}"
        return 0
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Do not let package scripts start the system's own postfix/dovecot: a policy-rc.d that
    # forbids every start, only for the duration of the install, and only if none exists.
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e "${policy}" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"${policy}"
        chmod 0755 "${policy}"
        created_policy=1
    fi
    # "No configuration": the system postfix gets no main.cf it could run with.
    if command -v debconf-set-selections >/dev/null 2>&1; then
        printf 'postfix postfix/main_mailer_type select No configuration\n' | debconf-set-selections || true
    fi
    local rc=0
    apt-get update -q || rc=$?
    if [[ ${rc} -eq 0 ]]; then
        apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    fi
    if [[ ${created_policy} -eq 1 ]]; then
        rm -f "${policy}"
    fi
    [[ ${rc} -eq 0 ]] || die "apt-get failed (exit ${rc})"
    # Belt and braces: the system instances must not hold the standard ports.
    if listening_on 25 || listening_on 143 || listening_on 993; then
        log "warning: something listens on port 25/143/993 after install; stopping the system services"
        if [[ -x /etc/init.d/postfix ]]; then /etc/init.d/postfix stop || true; fi
        if [[ -x /etc/init.d/dovecot ]]; then /etc/init.d/dovecot stop || true; fi
    fi
    log "installed: ${missing[*]}"
}

listening_on() {
    tcp_answers "$1"
}

# ---------------------------------------------------------------------------------------------
# helpers for up
# ---------------------------------------------------------------------------------------------

# Prints N distinct free ports on 127.0.0.1 (free for TCP and UDP both).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
n = int(sys.argv[1])
held, ports = [], []
while len(ports) < n:
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    t.bind(("127.0.0.1", 0))
    port = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        continue
    held += [t, u]
    ports.append(port)
print(" ".join(str(p) for p in ports))
for s in held:
    s.close()
PY
}

tcp_answers() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_for NAME LOGFILE CHECK-COMMAND...
wait_for() {
    local name="$1" logfile="$2"
    shift 2
    local i
    for ((i = 0; i < 100; i++)); do
        if "$@"; then
            log "${name} is up"
            return 0
        fi
        sleep 0.1
    done
    log "${name} did not come up within 10 s; last log lines (${logfile}):"
    if [[ -f "${logfile}" ]]; then tail -n 40 "${logfile}" >&2; else log "(no log file)"; fi
    die "${name} failed to start"
}

dns_answers() {
    local out
    out="$(dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "${DOMAIN}" MX 2>/dev/null)" || return 1
    [[ "${out}" == "10 ${MX_HOST}." ]]
}

make_cert() {
    mkdir -p "${TLS_DIR}"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 365 \
        -keyout "${TLS_KEY}" -out "${TLS_CERT}" \
        -subj "/CN=${MX_HOST}" \
        -addext "subjectAltName=DNS:${MX_HOST},IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
        -addext "extendedKeyUsage=serverAuth" \
        >/dev/null 2>&1 || die "openssl could not create the certificate"
    chmod 0644 "${TLS_CERT}"
    chmod 0600 "${TLS_KEY}"
}

# Writes the access(5) source table for exactly the given IPs and rebuilds the .db.
write_access_table() {
    local ip
    {
        printf '# client_access for the mailharness test bed (written by tests/testbed.sh throttle)\n'
        for ip in "$@"; do
            printf '%s %s\n' "${ip}" "451 4.7.500 Server busy. Please try again later from [${ip}]. (AS761)"
        done
    } >"${ACCESS_TABLE}.tmp"
    mv -f "${ACCESS_TABLE}.tmp" "${ACCESS_TABLE}"
    postmap -c "${PF_CONF}" "hash:${ACCESS_TABLE}"
}

write_postfix_config() {
    local smtp_port="$1" user
    mkdir -p "${PF_CONF}" "${PF_QUEUE}" "${PF_DATA}"
    chown postfix:postfix "${PF_DATA}"
    cat >"${PF_CONF}/main.cf" <<EOF
# Private Postfix instance of the mailharness test bed (generated by tests/testbed.sh).
compatibility_level = 3.6
queue_directory = ${PF_QUEUE}
data_directory = ${PF_DATA}
mail_owner = postfix
setgid_group = postdrop

myhostname = ${MX_HOST}
mydomain = ${DOMAIN}
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP mailharness test bed
biff = no
append_dot_mydomain = no
alias_maps =
alias_database =
local_recipient_maps =
relay_domains =

# No DNS at all, and nothing ever leaves this host: anything not for the virtual domain is
# refused at RCPT time, and any other transport fails hard.
smtp_dns_support_level = disabled
smtpd_peername_lookup = no
default_transport = error:mailharness test bed delivers nothing off-box
relay_transport = error:mailharness test bed delivers nothing off-box

virtual_mailbox_domains = ${DOMAIN}
virtual_mailbox_base = ${MAIL_ROOT}
virtual_mailbox_maps = hash:${PF_DIR}/vmailbox
virtual_uid_maps = static:${MAIL_UID}
virtual_gid_maps = static:${MAIL_GID}
virtual_minimum_uid = 100
virtual_transport = virtual

# Throttling: the access table answers 451 4.7.500 ... (AS761) for throttled client IPs.
# smtpd_delay_reject = yes (the default) makes it appear at RCPT TO, as Microsoft 365 does.
# TLS demand: the clients in the CIDR table get reject_plaintext_session, so a plain-text session
# is answered "451 4.7.1 Session encryption is required" (plaintext_reject_code) at RCPT TO.
smtpd_client_restrictions = check_client_access hash:${ACCESS_TABLE}, check_client_access cidr:${TLS_TABLE}
plaintext_reject_code = 451
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination
smtpd_reject_unlisted_recipient = yes

smtpd_tls_cert_file = ${TLS_CERT}
smtpd_tls_key_file = ${TLS_KEY}
smtpd_tls_security_level = may
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_received_header = yes
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
smtp_tls_security_level = none

maillog_file = ${PF_LOG}
maillog_file_prefixes = ${STATE}, /var, /dev/stdout
EOF
    cat >"${PF_CONF}/master.cf" <<EOF
# service   type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:${smtp_port} inet n     -       n       -       -       smtpd
pickup      unix  n       -       n       60      1       pickup
cleanup     unix  n       -       n       -       0       cleanup
qmgr        unix  n       -       n       300     1       qmgr
tlsmgr      unix  -       -       n       1000?   1       tlsmgr
rewrite     unix  -       -       n       -       -       trivial-rewrite
bounce      unix  -       -       n       -       0       bounce
defer       unix  -       -       n       -       0       bounce
trace       unix  -       -       n       -       0       bounce
verify      unix  -       -       n       -       1       verify
flush       unix  n       -       n       1000?   0       flush
proxymap    unix  -       -       n       -       -       proxymap
proxywrite  unix  -       -       n       -       1       proxymap
smtp        unix  -       -       n       -       -       smtp
relay       unix  -       -       n       -       -       smtp
showq       unix  n       -       n       -       -       showq
error       unix  -       -       n       -       -       error
retry       unix  -       -       n       -       -       error
discard     unix  -       -       n       -       -       discard
local       unix  -       n       n       -       -       local
virtual     unix  -       n       n       -       -       virtual
lmtp        unix  -       -       n       -       -       lmtp
anvil       unix  -       -       n       -       1       anvil
scache      unix  -       -       n       -       1       scache
postlog     unix-dgram n  -       n       -       1       postlogd
EOF
    : >"${PF_DIR}/vmailbox"
    for user in "${USERS[@]}"; do
        printf '%s@%s %s/%s/\n' "${user}" "${DOMAIN}" "${DOMAIN}" "${user}" >>"${PF_DIR}/vmailbox"
    done
    postmap -c "${PF_CONF}" "hash:${PF_DIR}/vmailbox"
    write_access_table "${THROTTLED_IP}"
    printf '# clients that must use TLS (written by tests/testbed.sh up)\n%s/32 reject_plaintext_session\n' \
        "${TLS_REQUIRED_IP}" >"${TLS_TABLE}"
}

write_dovecot_config() {
    local imap_port="$1" imaps_port="$2" user
    mkdir -p "${DC_DIR}" "${DC_RUN}"
    : >"${DC_DIR}/users"
    for user in "${USERS[@]}"; do
        printf '%s@%s:{PLAIN}%s\n' "${user}" "${DOMAIN}" "${IMAP_PASSWORD}" >>"${DC_DIR}/users"
    done
    chown root:dovecot "${DC_DIR}/users"
    chmod 0640 "${DC_DIR}/users"
    cat >"${DC_CONF}" <<EOF
# Private Dovecot instance of the mailharness test bed (generated by tests/testbed.sh).
instance_name = mailharness-testbed
base_dir = ${DC_RUN}
state_dir = ${DC_DIR}/state
log_path = ${DC_LOG}
info_log_path = ${DC_LOG}
protocols = imap
listen = 127.0.0.1
shutdown_clients = yes

ssl = yes
ssl_cert = <${TLS_CERT}
ssl_key = <${TLS_KEY}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
# "qa1" logs in as qa1@${DOMAIN}.
auth_default_realm = ${DOMAIN}

passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${DC_DIR}/users
}
userdb {
  driver = static
  args = uid=${MAIL_UID} gid=${MAIL_GID} home=${MAIL_ROOT}/%d/%n
}
first_valid_uid = 100
mail_location = maildir:${MAIL_ROOT}/%d/%n

namespace inbox {
  inbox = yes
  separator = /
  mailbox Junk {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox Trash {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Sent {
    special_use = \\Sent
    auto = subscribe
  }
  mailbox Drafts {
    special_use = \\Drafts
    auto = subscribe
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${imap_port}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = ${imaps_port}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0600
  }
}
EOF
}

prepare_maildirs() {
    local user sub
    mkdir -p "${MAIL_ROOT}/${DOMAIN}"
    for user in "${USERS[@]}"; do
        for sub in new cur tmp; do
            mkdir -p "${MAIL_ROOT}/${DOMAIN}/${user}/${sub}"
        done
    done
    chown -R "${MAIL_UID}:${MAIL_GID}" "${MAIL_ROOT}"
    chmod -R u+rwX,go-rwx "${MAIL_ROOT}"
}

# One `export NAME=value` line; values are written verbatim when they need no shell quoting, so
# the file is easy to parse by programs as well as to source.
env_line() {
    if [[ "$2" =~ ^[A-Za-z0-9@%+=:,./_-]*$ ]]; then
        printf 'export %s=%s\n' "$1" "$2"
    else
        printf 'export %s=%q\n' "$1" "$2"
    fi
}

write_env() {
    local smtp_port="$1" imap_port="$2" imaps_port="$3" dns_port="$4"
    local mailboxes="" user
    for user in "${USERS[@]}"; do
        mailboxes+="${mailboxes:+,}${user}@${DOMAIN}"
    done
    {
        env_line MH_TESTBED_DIR "${STATE}"
        env_line MH_TESTBED_DOMAIN "${DOMAIN}"
        env_line MH_TESTBED_MAILBOXES "${mailboxes}"
        env_line MH_TESTBED_SMTP_HOST 127.0.0.1
        env_line MH_TESTBED_SMTP_PORT "${smtp_port}"
        env_line MH_TESTBED_TLS_CA "${TLS_CERT}"
        env_line MH_TESTBED_TLS_NAME "${MX_HOST}"
        env_line MH_TESTBED_THROTTLED_IP "${THROTTLED_IP}"
        env_line MH_TESTBED_TLS_REQUIRED_IP "${TLS_REQUIRED_IP}"
        env_line MH_TESTBED_ACCESS_TABLE "${ACCESS_TABLE}"
        env_line MH_TESTBED_MAILDIR_ROOT "${MAIL_ROOT}/${DOMAIN}"
        env_line MH_TESTBED_IMAP_HOST 127.0.0.1
        env_line MH_TESTBED_IMAP_PORT "${imap_port}"
        env_line MH_TESTBED_IMAPS_PORT "${imaps_port}"
        env_line MH_TESTBED_IMAP_PASSWORD "${IMAP_PASSWORD}"
        env_line MH_TESTBED_DNS_HOST 127.0.0.1
        env_line MH_TESTBED_DNS_PORT "${dns_port}"
        env_line MH_TESTBED_MX_HOST "${MX_HOST}"
        env_line MH_TESTBED_POSTFIX_CONFIG "${PF_CONF}"
        env_line MH_TESTBED_DOVECOT_CONFIG "${DC_CONF}"
    } >"${ENV_FILE}.tmp"
    mv -f "${ENV_FILE}.tmp" "${ENV_FILE}"
}

# ---------------------------------------------------------------------------------------------
# up / down / status / throttle
# ---------------------------------------------------------------------------------------------
postfix_running() {
    [[ -f "${PF_CONF}/main.cf" ]] && postfix -c "${PF_CONF}" status >/dev/null 2>&1
}

dovecot_pid() {
    local pid
    [[ -f "${DC_RUN}/master.pid" ]] || return 1
    pid="$(cat "${DC_RUN}/master.pid")"
    if ! [[ "${pid}" =~ ^[0-9]+$ ]] || ! kill -0 "${pid}" 2>/dev/null; then return 1; fi
    # Only a dovecot process started with our config counts.
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${DC_CONF}" || return 1
    printf '%s\n' "${pid}"
}

dnsmasq_pid() {
    local pid
    [[ -f "${DNS_PID}" ]] || return 1
    pid="$(cat "${DNS_PID}")"
    if ! [[ "${pid}" =~ ^[0-9]+$ ]] || ! kill -0 "${pid}" 2>/dev/null; then return 1; fi
    tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -qF -- "${DNS_PID}" || return 1
    printf '%s\n' "${pid}"
}

wait_gone() {
    local pid="$1" i
    for ((i = 0; i < 50; i++)); do
        kill -0 "${pid}" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

cmd_down() {
    local pid
    if postfix_running; then
        log "stopping postfix"
        postfix -c "${PF_CONF}" stop >/dev/null 2>&1 || true
        local i
        for ((i = 0; i < 50; i++)); do
            postfix_running || break
            sleep 0.1
        done
        if postfix_running; then
            postfix -c "${PF_CONF}" abort >/dev/null 2>&1 || true
        fi
    fi
    if pid="$(dovecot_pid)"; then
        log "stopping dovecot (pid ${pid})"
        doveadm -c "${DC_CONF}" stop >/dev/null 2>&1 || kill "${pid}" 2>/dev/null || true
        wait_gone "${pid}" || kill -9 "${pid}" 2>/dev/null || true
    fi
    if pid="$(dnsmasq_pid)"; then
        log "stopping dnsmasq (pid ${pid})"
        kill "${pid}" 2>/dev/null || true
        wait_gone "${pid}" || kill -9 "${pid}" 2>/dev/null || true
    fi
    rm -f "${DNS_PID}"
    log "down"
}

cmd_up() {
    need_root
    local bin
    for bin in postfix postmap dovecot doveadm dnsmasq dig openssl python3; do
        command -v "${bin}" >/dev/null 2>&1 || die "${bin} not found: run tests/testbed.sh install"
    done
    # Idempotent: stop whatever a previous `up` left running, then start from a clean state.
    cmd_down
    rm -rf "${MAIL_ROOT}" "${PF_DIR}" "${DC_DIR}" "${DNS_DIR}" "${TLS_DIR}" "${ENV_FILE}"
    UP_IN_PROGRESS=1
    mkdir -p "${STATE}" "${DNS_DIR}"
    chmod 0755 "${STATE}"

    local ports smtp_port imap_port imaps_port dns_port
    ports="$(free_ports 4)"
    read -r smtp_port imap_port imaps_port dns_port <<<"${ports}"
    log "ports: smtp ${smtp_port}, imap ${imap_port}, imaps ${imaps_port}, dns ${dns_port}"

    make_cert
    prepare_maildirs
    write_postfix_config "${smtp_port}"
    write_dovecot_config "${imap_port}" "${imaps_port}"

    # dnsmasq: authoritative-ish for the test bed names only, never forwards anything.
    dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --no-poll \
        --port="${dns_port}" --listen-address=127.0.0.1 --bind-interfaces \
        --pid-file="${DNS_PID}" --log-facility="${DNS_LOG}" --log-queries \
        --mx-host="${DOMAIN},${MX_HOST},10" \
        --host-record="${MX_HOST},127.0.0.1" \
        --user=root \
        || { tail -n 20 "${DNS_LOG}" >&2 2>/dev/null || true; die "dnsmasq failed to start"; }
    wait_for dnsmasq "${DNS_LOG}" dns_answers "${dns_port}"

    postfix -c "${PF_CONF}" check >>"${PF_DIR}/start.log" 2>&1 \
        || { cat "${PF_DIR}/start.log" >&2; die "postfix check failed"; }
    postfix -c "${PF_CONF}" start >>"${PF_DIR}/start.log" 2>&1 \
        || { cat "${PF_DIR}/start.log" >&2; tail -n 40 "${PF_LOG}" >&2 2>/dev/null || true; die "postfix failed to start"; }
    wait_for postfix "${PF_LOG}" tcp_answers "${smtp_port}"

    dovecot -c "${DC_CONF}" >>"${DC_DIR}/start.log" 2>&1 \
        || { cat "${DC_DIR}/start.log" >&2; tail -n 40 "${DC_LOG}" >&2 2>/dev/null || true; die "dovecot failed to start"; }
    wait_for "dovecot imap" "${DC_LOG}" tcp_answers "${imap_port}"
    wait_for "dovecot imaps" "${DC_LOG}" tcp_answers "${imaps_port}"

    write_env "${smtp_port}" "${imap_port}" "${imaps_port}" "${dns_port}"
    UP_IN_PROGRESS=0
    log "up; source the environment with: . ${ENV_FILE}"
    printf '%s\n' "${ENV_FILE}"
}

cmd_throttle() {
    need_root
    [[ -f "${PF_CONF}/main.cf" ]] || die "test bed not set up (no ${PF_CONF}/main.cf): run tests/testbed.sh up"
    local ip
    for ip in "$@"; do
        [[ "${ip}" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "not an IPv4 address: ${ip}"
    done
    write_access_table "$@"
    if postfix_running; then
        postfix -c "${PF_CONF}" reload >/dev/null 2>&1 || die "postfix reload failed"
    fi
    if [[ $# -eq 0 ]]; then
        log "throttling nobody"
    else
        log "throttling: $*"
    fi
}

cmd_status() {
    local pid any=0
    if postfix_running; then
        printf 'postfix: running (pid %s), config %s\n' "$(tr -d ' ' <"${PF_QUEUE}/pid/master.pid" 2>/dev/null || true)" "${PF_CONF}"
        any=1
    else
        printf 'postfix: stopped\n'
    fi
    if pid="$(dovecot_pid)"; then
        printf 'dovecot: running (pid %s), config %s\n' "${pid}" "${DC_CONF}"
        any=1
    else
        printf 'dovecot: stopped\n'
    fi
    if pid="$(dnsmasq_pid)"; then
        printf 'dnsmasq: running (pid %s)\n' "${pid}"
        any=1
    else
        printf 'dnsmasq: stopped\n'
    fi
    if [[ ${any} -eq 1 && -f "${ENV_FILE}" ]]; then
        printf 'env: %s\n' "${ENV_FILE}"
        sed -n 's/^export //p' "${ENV_FILE}"
        if [[ -f "${ACCESS_TABLE}" ]]; then
            printf 'throttled: %s\n' "$(awk '!/^#/ && NF {printf "%s ", $1}' "${ACCESS_TABLE}")"
        fi
    fi
}

main() {
    [[ $# -ge 1 ]] || usage
    local cmd="$1"
    shift
    case "${cmd}" in
        install) cmd_install "$@" ;;
        up) cmd_up "$@" ;;
        down) cmd_down "$@" ;;
        status) cmd_status "$@" ;;
        throttle) cmd_throttle "$@" ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
