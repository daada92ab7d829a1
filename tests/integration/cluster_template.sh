#!/usr/bin/env bash
# The template library on a 2-node local cluster: node 2 gets a templates
# directory of its own (empty), the admin pushes a template (a copy of
# busybox, packed by the CLI) into the master's library; a corrupted upload
# is refused; a guest created from it on node 2 makes the master send it
# there (an operation of kind "template"), node 2 unpacks it into its own
# templates directory, reports it with the same tree checksum node 1 has
# for busybox, and the guest runs from it; a second guest reuses it (no
# second fetch); a long unpack (a template of 150,000 files) holds up no
# guest stop on the node; the library entry goes and the nodes keep their copies.
. "$(dirname "$0")/lib.sh"

command -v nsenter >/dev/null || { echo "SKIP: no nsenter"; exit 77; }

# The master sends templates to the node's data channel: on the local
# cluster only over its ipc:// socket (as cluster_import).
CL_LINK=ipc
start_cluster 2
n1=$(node 1) n2=$(node 2)

# Node 2 again, on a templates directory of its own.
pid=$(cl_agent_pid "$n2")
mapfile -d '' args <"/proc/$pid/cmdline"
kill "$pid"
for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
! alive "$pid" || fail "$n2's agent did not exit in 10 s after SIGTERM"
own=$CL/$n2/templates
mkdir -p "$own"
for i in "${!args[@]}"; do
    [ "${args[$i]}" = --templates ] && args[i + 1]=$own
done
ns=vf-$n2
setsid nsenter --net="/run/netns/$ns" -- "${args[@]}" </dev/null >>"$CL/$n2/agent.log" 2>&1 &
echo $! >"$CL/$n2/agent.pid"
n2_ready() { [ "$(node_state "$n2")" = ready ] && [ "$(cl_agent_pid "$n2")" != "$pid" ]; }
wait_for 30 "$n2 back" n2_ready
has_hello() { vf --json template ls | jq -e --arg n "$n2" '[.templates[].nodes[]? | select(.node == $n)] | length == 0' >/dev/null; }
wait_for 30 "$n2 reporting no template" has_hello
ok "$n2 runs on its own empty templates directory"

# A corrupted upload: the checksum announced is not the bytes'.
src=$T/bbnew
cp -a "$CL/templates/busybox" "$src"
printf 'hello\n' >"$T/junk"
body=$(printf '{"size":6,"sha256":"%064d"}' 0)
up=$(api_curl -s -X POST -H 'Content-Type: application/json' -d "$body" /v1/archives | jq -r .id)
api_curl -s -X POST -H 'Content-Type: application/json' \
    -d "{\"offset\":0,\"data\":\"$(base64 -w0 <"$T/junk")\"}" "/v1/archives/$up" >/dev/null
code=$(api_curl -s -o "$T/bad.json" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d "{\"name\":\"bbnew\",\"archive\":\"$up\"}" /v1/templates)
[ "$code" = 400 ] || fail "a corrupted upload was answered $code: $(cat "$T/bad.json")"
grep -q checksum "$T/bad.json" || fail "the refusal does not say why: $(cat "$T/bad.json")"
ok "a corrupted upload is refused ($code)"

vf template push bbnew "$src" >"$T/push.out" 2>&1 || fail "push: $(cat "$T/push.out")"
lib=$(vf --json template ls | jq -r '.templates[] | select(.name == "bbnew") | .library.sha256')
[ ${#lib} -eq 64 ] || fail "the library does not list bbnew: $(vf --json template ls)"
vf template ls | grep bbnew | grep -q "sha256:${lib:0:12}" || fail "template ls: $(vf template ls)"
ok "bbnew in the library (sha256 ${lib:0:12}...)"

vf guest create tg1 --template bbnew --memory 32M --disk 32M --cpu 0.1 --node "$n2" \
    --wait --timeout 60 >"$T/c1.out" 2>&1 || fail "create tg1: $(cat "$T/c1.out")"
[ "$(guest_field tg1 state)" = running ] || fail "tg1 is $(guest_field tg1 state)"
[ "$(vf guest exec tg1 -- cat /proc/1/comm)" != "" ] || fail "tg1 runs nothing"
ops=$(vf --json op ls | jq --arg n "$n2" '[.operations[] | select(.kind == "template" and .target == $n)]')
[ "$(echo "$ops" | jq length)" -eq 1 ] || fail "template fetches to $n2: $ops"
[ "$(echo "$ops" | jq -r '.[0].state')" = done ] || fail "the fetch: $ops"
[ -x "$own/bbnew/sbin/init" ] || fail "$own/bbnew is not there"
ls -A "$own" | grep -q '^\.' && fail "leftovers in $own: $(ls -A "$own")"
sums=$(vf --json template ls)
s_new=$(echo "$sums" | jq -r --arg n "$n2" '.templates[] | select(.name == "bbnew") | .nodes[] | select(.node == $n) | .checksum')
s_bb=$(echo "$sums" | jq -r --arg n "$n1" '.templates[] | select(.name == "busybox") | .nodes[] | select(.node == $n) | .checksum')
[ "${#s_new}" -eq 71 ] && [ "$s_new" = "$s_bb" ] ||
    fail "$n2's bbnew sums to $s_new, $n1's busybox to $s_bb"
ok "tg1 runs on $n2 from the fetched template ($s_new, as busybox on $n1)"

vf guest create tg2 --template bbnew --memory 32M --disk 32M --cpu 0.1 --node "$n2" \
    --wait --timeout 60 >"$T/c2.out" 2>&1 || fail "create tg2: $(cat "$T/c2.out")"
n_ops=$(vf --json op ls | jq '[.operations[] | select(.kind == "template")] | length')
[ "$n_ops" -eq 1 ] || fail "a second create fetched again ($n_ops fetches)"
ok "tg2 reuses the template on $n2"

# A fetch that takes long on the node holds up no guest: a template of
# 150,000 empty files (an archive of a few MB that takes the node seconds
# to unpack and sum) is still being unpacked on n2 when tg1 there has
# stopped (it waited for the unpack when both were on the node's lifecycle
# lane).
holes=$T/holes
mkdir -p "$holes/etc" "$holes/many"
(cd "$holes/many" && seq -f 'f%06g' 1 150000 | xargs touch)
vf template push holes "$holes" >"$T/push-holes.out" 2>&1 || fail "push holes: $(cat "$T/push-holes.out")"
hop=$(api_curl -s -X POST -H 'Content-Type: application/json' -d "{\"nodes\":[\"$n2\"]}" \
    /v1/templates/holes/distribute | jq -r '.operations[0].operation')
hstep() { api_curl -s "/v1/operations/$hop" | jq -r .step; }
at_commit() { [ "$(hstep)" = commit ]; }
wait_for 60 "the holes fetch at step commit" at_commit
vf guest stop tg1 --wait --timeout 60 >"$T/stop.out" 2>&1 || fail "stop tg1: $(cat "$T/stop.out")"
[ "$(hstep)" = commit ] || fail "tg1's stop waited for the template's unpack (the fetch is at $(hstep))"
ok "tg1 stopped while $n2 unpacked a template"
h_done() { [ "$(hstep)" = done ]; }
wait_for 600 "the holes fetch done" h_done
vf template rm holes >/dev/null || fail "template rm holes"

vf template rm bbnew >/dev/null || fail "template rm"
vf --json template ls | jq -e '.templates[] | select(.name == "bbnew") | .library == null' >/dev/null ||
    fail "bbnew still in the library"
[ -d "$own/bbnew" ] || fail "$n2 lost its copy"
ok "the library entry is gone, $n2 keeps its copy"
for g in tg1 tg2; do vf guest rm "$g" >/dev/null; done
