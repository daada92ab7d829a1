#!/usr/bin/env bash
# The API as an operator meets it, with the real programs: vfleet-master
# with its self-signed certificate made at first start (key 0600, database
# 0600) and its Unix socket, two simulated nodes, and the vfleet CLI. Root
# on the socket needs no token; over TCP the CLI trusts the master by the
# pin it logged (a wrong pin, a missing or wrong token are refused, exit 6);
# a tenant token works in its project only (another project's guest is
# "not found", exit 3) and within its quota (exit 4); a certificate the
# operator brings is served instead.
. "$(dirname "$0")/lib.sh"

port=$(free_port)
M=$T/m
mkdir -p "$M"
start_master() {
    "$VFLEET_BIN/vfleet-master" --db "$M/master.db" --listen "127.0.0.1:$port" \
        --bind "ipc://$M/nodes.sock" --socket "$M/api.sock" --log-level info "$@" \
        >>"$M/master.log" 2>&1 &
    MASTER_PID=$!
    AGENT_PIDS+=("$MASTER_PID")
    wait_for 10 "the master's socket" test -S "$M/api.sock"
}
stop_master() {
    kill "$MASTER_PID"
    wait "$MASTER_PID" 2>/dev/null || true
}
start_master
"$VFLEET_BIN/vfleet-node" run --backend sim --sim-nodes 2 --name s$$ --master "ipc://$M/nodes.sock" \
    --state-dir "$T/sim" --heartbeat 500 --log-level notice >>"$T/sim.log" 2>&1 &
AGENT_PIDS+=($!)

root() { "$VFLEET_BIN/vfleet" --master "unix:$M/api.sock" "$@"; }
wait_for 20 "two nodes" sh -c "'$VFLEET_BIN/vfleet' --master unix:$M/api.sock --json node ls | grep -c '\"ready\"' | grep -qx 2"
ok "root on the master's host uses the Unix socket without a token"

[ "$(stat -c %a "$M/api.key")" = 600 ] || fail "api.key is $(stat -c %a "$M/api.key")"
[ "$(stat -c %a "$M/master.db")" = 600 ] || fail "master.db is $(stat -c %a "$M/master.db")"
[ "$(stat -c %a "$M/api.sock")" = 600 ] || fail "api.sock is $(stat -c %a "$M/api.sock")"
pin=$(grep -o 'pin sha256//[A-Za-z0-9+/=]*' "$M/master.log" | head -1 | cut -d' ' -f2)
[ -n "$pin" ] || fail "the master logged no pin"
ok "self-signed certificate made at first start (key, database, socket 0600), pin $pin"

admin=$(root token create --role admin --description scenario 2>/dev/null)
tcp() { "$VFLEET_BIN/vfleet" --master "https://127.0.0.1:$port" "$@"; }
tcp --pin "$pin" --token "$admin" node ls >/dev/null || fail "admin over TLS with the pin"
wrong=${pin:0:12}$( [ "${pin:12:1}" = A ] && echo B || echo A )${pin:13}
set +e
tcp --pin "$wrong" --token "$admin" node ls >/dev/null 2>"$T/err"; rc_pin=$?
tcp --token "$admin" node ls >/dev/null 2>>"$T/err"; rc_noca=$?
tcp --pin "$pin" node ls >/dev/null 2>>"$T/err"; rc_notok=$?
# A wrong token: the real one with its last character changed (to 0, or to 1
# when it already ends in 0).
if [ "${admin: -1}" = 0 ]; then bad_token=${admin%?}1; else bad_token=${admin%?}0; fi
tcp --pin "$pin" --token "$bad_token" node ls >/dev/null 2>>"$T/err"; rc_badtok=$?
set -e
[ $rc_pin = 6 ] && [ $rc_noca = 6 ] && [ $rc_notok = 6 ] && [ $rc_badtok = 6 ] ||
    fail "wrong pin $rc_pin, no pin $rc_noca, no token $rc_notok, wrong token $rc_badtok (want 6): $(cat "$T/err")"
tcp --ca "$M/api.crt" --token "$admin" node ls >/dev/null || fail "the certificate as a CA file"
ok "TLS: the pin and the certificate are trusted, a wrong pin and no trust are refused; no or a wrong token: 401"

root project create p1 --guests 2 --memory 256M >/dev/null
root project create p2 >/dev/null
t1=$(root token create --role tenant --project p1 --ttl 1h 2>/dev/null)
t2=$(root token create --role tenant --project p2 2>/dev/null)
as1() { tcp --pin "$pin" --token "$t1" "$@"; }
as2() { tcp --pin "$pin" --token "$t2" "$@"; }
as2 guest create b1 --template busybox --memory 64M >/dev/null || fail "tenant 2 create"
as1 guest create a1 --template busybox --memory 64M >/dev/null || fail "tenant 1 create"
set +e
as1 guest show b1 >/dev/null 2>&1; rc_show=$?
as1 guest rm b1 >/dev/null 2>&1; rc_rm=$?
as1 guest exec b1 -- true >/dev/null 2>&1; rc_exec=$?
as1 guest set b1 --memory 128M >/dev/null 2>&1; rc_set=$?
as1 node ls >/dev/null 2>&1; rc_nodes=$?
as1 token ls >/dev/null 2>&1; rc_tokens=$?
set -e
[ "$rc_show$rc_rm$rc_exec$rc_set" = 3333 ] || fail "tenant 1 on p2's guest: $rc_show $rc_rm $rc_exec $rc_set (want 3)"
[ "$rc_nodes$rc_tokens" = 66 ] || fail "tenant 1 on nodes/tokens: $rc_nodes $rc_tokens (want 6)"
[ "$(as1 --json guest ls | jv '[.guests[].name]')" = '["a1"]' ] ||
    fail "tenant 1 lists $(as1 --json guest ls)"
root guest show b1 >/dev/null || fail "b1 is gone"
ok "tenant of p1: p2's guest is not found (show, rm, exec, set), nodes and tokens refused, its list is its own"

as1 guest create a2 --template busybox --memory 64M >/dev/null || fail "second guest of p1"
set +e
as1 guest create a3 --template busybox --memory 64M >/dev/null 2>"$T/q"; rc_q=$?
set -e
[ $rc_q = 4 ] && grep -q "quota" "$T/q" || fail "third guest of p1: exit $rc_q: $(cat "$T/q")"
ok "p1's guest quota refuses the third guest (exit 4): $(head -1 "$T/q")"

# The operator's own certificate, served after a restart.
stop_master
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=vfleet-test -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$T/own.key" -out "$T/own.crt" >/dev/null 2>&1 || fail "openssl"
start_master --tls-cert "$T/own.crt" --tls-key "$T/own.key"
wait_for 10 "the master over TLS" "$VFLEET_BIN/vfleet" --master "https://127.0.0.1:$port" \
    --ca "$T/own.crt" --token "$admin" health
set +e
tcp --pin "$pin" --token "$admin" health >/dev/null 2>&1; rc_old=$?
set -e
[ $rc_old = 6 ] || fail "the old pin still matched (exit $rc_old)"
ok "an operator's certificate and key are served; the self-signed pin no longer matches"
