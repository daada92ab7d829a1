#!/usr/bin/env bash
# A token's revocation and its expiry end what the token holds open, not
# only its next request: a tenant's shell in its guest and its event stream
# are hung up when an admin deletes the token, and when the token expires.
. "$(dirname "$0")/lib.sh"

start_cluster 1

vf project create prv >/dev/null || fail "project create"
tok=$(vf token create --role tenant --project prv 2>/dev/null) || fail "tenant token"
tid=${tok%%.*}
tcp=("$VFLEET_BIN/vfleet" --master "https://127.0.0.1:$CL_PORT" --ca "$CL/api.crt")
as() { "${tcp[@]}" --token "$1" "${@:2}"; }
as "$tok" guest create r1 --template busybox --memory 64M --disk 32M --wait --timeout 60 \
    >/dev/null || fail "tenant creates r1"
ok "the tenant's r1 runs"

sleep_up() { vf guest exec r1 -- ps | grep -q 'sleep 300'; }
sleep_gone() { ! sleep_up; }
# hold TOKEN TAG: a shell (sleep 300) and an event stream (from the first
# event: r1's show that it is read), both held open over TLS with TOKEN in
# the background; their pids in $T/TAG.pids.
hold() {
    "${tcp[@]}" --token "$1" guest shell r1 -T -- sleep 300 </dev/null >"$T/$2.shell" 2>&1 &
    echo $! >"$T/$2.pids"
    "${tcp[@]}" --token "$1" events --follow --after 0 >"$T/$2.events" 2>&1 &
    echo $! >>"$T/$2.pids"
    while read -r p; do AGENT_PIDS+=("$p"); done <"$T/$2.pids"
    wait_for 20 "the tenant's shell runs" sleep_up
    wait_for 20 "the tenant's event stream shows r1" grep -q r1 "$T/$2.events"
    sleep 1
    for p in $(cat "$T/$2.pids"); do alive "$p" || fail "$2: client $p ended early: $(cat "$T/$2".*)"; done
}
# hung_up TAG: both of TAG's clients have ended.
hung_up() {
    local p
    for p in $(cat "$T/$1.pids"); do ! alive "$p" || return 1; done
}
# wait_hung TAG SECS WHAT: fails naming the clients still running.
wait_hung() {
    local end=$((SECONDS + $2)) p
    while ! hung_up "$1"; do
        if [ $SECONDS -ge $end ]; then
            for p in $(cat "$T/$1.pids"); do
                alive "$p" && log "still running: $(tr '\0' ' ' <"/proc/$p/cmdline")"
            done
            log "the shell said: $(cat "$T/$1.shell")"
            fail "$3: still open after $2 s"
        fi
        sleep 0.2
    done
}

hold "$tok" del
vf token rm "$tid" >/dev/null || fail "token rm"
as "$tok" guest ls >/dev/null 2>&1 && fail "the deleted token still lists guests"
wait_hung del 15 "a deleted token's shell and event stream"
wait_for 15 "the deleted token's command hung up" sleep_gone
ok "deleted token: its shell and its event stream hung up, the command with them"

tok2=$(vf token create --role tenant --project prv --ttl 15s 2>/dev/null) || fail "token of 15 s"
hold "$tok2" exp
wait_hung exp 40 "an expired token's shell and event stream"
as "$tok2" guest ls >/dev/null 2>&1 && fail "the expired token still lists guests"
ok "expired token: its shell and its event stream hung up"

vf guest rm r1 >/dev/null || fail "rm r1"
