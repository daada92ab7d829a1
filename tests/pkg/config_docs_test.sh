#!/usr/bin/env bash
# Every configuration key is documented and shipped: the keys the programs
# accept (vfleet-master/vfleet-node --help-config) are exactly the keys
# docs/config.md documents in its tables, each appears in the example config
# (/etc/vfleet/*.conf), the example configs pass the programs' own check
# as shipped and with every commented key uncommented, and a typo or a bad
# value in them stops the program with FILE:LINE.
set -euo pipefail
src=${VFLEET_SOURCE_DIR:?}
bin=${VFLEET_BIN:?}
build=$(cd "$bin/.." && pwd)
tmp=$(mktemp -d /tmp/vfleet-config-docs.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

for prog in master node; do
    conf=$build/deploy/$prog.conf
    [ -f "$conf" ] || fail "$conf not generated (cmake configure)"
    # "[section] key" of every key the program accepts.
    "$bin/vfleet-$prog" --help-config | awk '{ print $1, $2 }' | sort >"$tmp/accepted"
    # Documented: table rows "| `key` |" under "### [section]" headings of
    # the program's part ("## vfleet-PROG ...") of docs/config.md.
    awk -v p="## vfleet-$prog" '
        /^## / { on = index($0, p) == 1 }
        on && /^### \[/ { sec = $2 }
        on && /^\| `/ { k = $2; gsub(/`/, "", k); print sec, k }' "$src/docs/config.md" |
        sort >"$tmp/documented"
    diff -u "$tmp/accepted" "$tmp/documented" >"$tmp/diff" ||
        fail "vfleet-$prog: keys accepted (-) vs documented in docs/config.md (+):
$(cat "$tmp/diff")"
    # In the example: "key =" or "#key =" under its section.
    while read -r sec key; do
        [ "$key" = "*" ] && continue
        awk -v s="$sec" -v k="$key" '
            /^\[/ { cur = $1 }
            cur == s && $0 ~ "^#?" k " = " { found = 1 }
            END { exit !found }' "$conf" || fail "$conf does not show $sec $key"
    done <"$tmp/accepted"
    "$bin/vfleet-$prog" --config "$conf" --check-config >/dev/null ||
        fail "the shipped $prog.conf does not pass --check-config"
    # Every example value is valid too.
    sed -E 's/^#([a-z_]+ = )/\1/' "$conf" >"$tmp/all.conf"
    if [ $prog = node ]; then
        # sim_nodes needs the sim backend, nat an uplink: the example shows both.
        sed -i -E 's/^#?backend = .*/backend = sim/' "$tmp/all.conf"
    else
        # --check-config reads tls_cert and tls_key: a real pair where the
        # example names the operator's files.
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
            -subj /CN=localhost -keyout "$tmp/api.key" -out "$tmp/api.crt" 2>/dev/null
        sed -i -E "s|^tls_cert = .*|tls_cert = $tmp/api.crt|; s|^tls_key = .*|tls_key = $tmp/api.key|" \
            "$tmp/all.conf"
    fi
    "$bin/vfleet-$prog" --config "$tmp/all.conf" --check-config >/dev/null ||
        fail "$prog.conf with every key uncommented does not pass --check-config"
    # A typo stops start-up with the file and line.
    cp "$conf" "$tmp/typo.conf"
    echo "[$prog]" >>"$tmp/typo.conf"
    echo "log_levle = debug" >>"$tmp/typo.conf"
    line=$(wc -l <"$tmp/typo.conf")
    set +e
    out=$("$bin/vfleet-$prog" --config "$tmp/typo.conf" --check-config 2>&1)
    rc=$?
    set -e
    [ $rc -eq 2 ] || fail "$prog: a typo exits $rc, not 2"
    [ "$out" = "vfleet-$prog: $tmp/typo.conf:$line: [$prog] log_levle: unknown key" ] ||
        fail "$prog: typo message: $out"
    # Every key that has a flag of its own name ("--key-name") is named in
    # the program's --help and in its man page. A flag the program does not
    # know is refused by getopt before --help is reached.
    "$bin/vfleet-$prog" --help >"$tmp/help"
    flags=0
    while read -r sec key; do
        [ "$key" = "*" ] && continue
        flag=--${key//_/-}
        out=$("$bin/vfleet-$prog" "$flag" x --help 2>&1 </dev/null) || : # "x" may be a bad value
        [[ "$out" == *"unrecognized option"* ]] && continue
        flags=$((flags + 1))
        grep -qE -- "$flag([^a-z-]|\$)" "$tmp/help" || fail "vfleet-$prog --help does not name $flag"
        grep -qE -- "$flag([^a-z-]|\$)" "$src/man/vfleet-$prog.8.scd" ||
            fail "man/vfleet-$prog.8.scd does not name $flag"
    done <"$tmp/accepted"
    [ $flags -gt 5 ] || fail "vfleet-$prog: only $flags flags found"
    echo "vfleet-$prog: $(wc -l <"$tmp/accepted") keys accepted, documented and shown; $flags flags in --help and the man page"
done

# A bad value names its line and the reason; a flag names itself.
printf '[master]\nlisten = 127.0.0.1:7400\nmax_ips = 65\n' >"$tmp/bad.conf"
set +e
out=$("$bin/vfleet-master" --config "$tmp/bad.conf" --check-config 2>&1)
[ "$out" = "vfleet-master: $tmp/bad.conf:3: [master] max_ips: 65 is out of range (1 to 64)" ] ||
    fail "bad value: $out"
out=$("$bin/vfleet-master" --config "$tmp/bad.conf" --max-ips 0 --check-config 2>&1)
[ "$out" = "vfleet-master: --max-ips: [master] max_ips: 0 is out of range (1 to 64)" ] ||
    fail "bad flag: $out"
# tls_cert without tls_key, and a certificate that cannot be read.
printf '[master]\ntls_cert = %s/none.crt\n' "$tmp" >"$tmp/tls.conf"
out=$("$bin/vfleet-master" --config "$tmp/tls.conf" --check-config 2>&1)
[ "$out" = "vfleet-master: $tmp/tls.conf:2: [master] tls_cert: tls_cert and tls_key go together" ] ||
    fail "tls_cert alone: $out"
printf 'tls_key = %s/none.key\n' "$tmp" >>"$tmp/tls.conf"
out=$("$bin/vfleet-master" --config "$tmp/tls.conf" --check-config 2>&1)
rc=$?
[ $rc -eq 2 ] && [[ "$out" == "vfleet-master: $tmp/tls.conf:2: [master] tls_cert: "*none.crt* ]] ||
    fail "unreadable tls_cert ($rc): $out"
out=$("$bin/vfleet-node" --config "$tmp/bad.conf" --check-config 2>&1)
[ "$out" = "vfleet-node: $tmp/bad.conf:2: [master] listen: unknown section" ] ||
    fail "wrong file: $out"
set -e
echo "config docs: ok"
