#!/bin/sh
# cert_tool_test.sh <builddir>: drives the built `starling` tool through
# `cert ca`, `cert node`, `cert fingerprint` and `cert dev`, and checks what it
# wrote with GnuTLS's own certtool (gnutls-bin): X.509 v3, ECDSA P-256, the
# extensions, the chain to the CA, a 14-day development certificate, key files
# with mode 0600, and fingerprints equal to certtool's. Then the error cases:
# missing and garbage files exit 1 with the path in the message, bad usage
# exits 2, existing outputs are kept unless --force. Skipped (77) without
# certtool.
set -u
BUILD=$(cd "$1" && pwd)
BIN="$BUILD/tools/starling"
if ! command -v certtool >/dev/null 2>&1; then
    echo "skipped: certtool (gnutls-bin) is not installed"; exit 77
fi
if [ ! -x "$BIN" ]; then
    echo "FAIL: $BIN was not built"; exit 1
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1
FAILS=0

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

# run EXPECTED_STATUS CMD...: runs CMD, stdout to out.txt, stderr to err.txt.
run() {
    want=$1; shift
    "$@" >out.txt 2>err.txt
    got=$?
    if [ "$got" -ne "$want" ]; then
        fail "'$*' exited $got, expected $want"; sed 's/^/  | /' err.txt out.txt
        return 1
    fi
    return 0
}
# has FILE TEXT: FILE contains TEXT (fixed string).
has() { grep -qF -- "$2" "$1"; }
field() { sed -n "s/^$1: //p" out.txt; }

# ---------------------------------------------------------------- help
run 0 "$BIN" --help && has out.txt "usage: starling" && has out.txt "cert node" && ok "--help"
run 0 "$BIN" version && has out.txt "starling 0.1.0" && ok "version"

# ------------------------------------------------------------------ ca
if run 0 "$BIN" cert ca --out-cert ca.pem --out-key ca.key --cn "Test Cluster CA" --days 30; then
    certtool -i --infile ca.pem >info.txt 2>&1 || fail "certtool cannot read ca.pem"
    has info.txt "Version: 3" && has info.txt "SECP256R1" &&
        has info.txt "Certificate Authority (CA): TRUE" && has info.txt "CN=Test Cluster CA" &&
        has info.txt "Certificate signing" && ok "CA certificate shape" ||
        fail "CA certificate shape"; 
    [ "$(stat -c %a ca.key)" = 600 ] && ok "CA key mode 0600" || fail "CA key mode $(stat -c %a ca.key)"
    certtool -k --infile ca.key >/dev/null 2>&1 && ok "CA key parses" || fail "CA key parses"
fi

# ---------------------------------------------------------------- node
if run 0 "$BIN" cert node --ca-cert ca.pem --ca-key ca.key --out-cert n1.pem --out-key n1.key; then
    certtool -i --infile n1.pem >info.txt 2>&1
    has info.txt "Version: 3" && has info.txt "SECP256R1" &&
        has info.txt "Certificate Authority (CA): FALSE" && has info.txt "TLS WWW Server" &&
        has info.txt "TLS WWW Client" && has info.txt "IPAddress: 127.0.0.1" &&
        has info.txt "DNSname: localhost" && has info.txt "Issuer: CN=Test Cluster CA" &&
        ok "node certificate shape" || fail "node certificate shape"
    [ "$(stat -c %a n1.key)" = 600 ] && ok "node key mode 0600" || fail "node key mode"
    if certtool --verify --load-ca-certificate ca.pem --infile n1.pem >v.txt 2>&1 &&
        has v.txt "Verified"; then ok "node chain verifies against the CA"
    else fail "node chain does not verify"; sed 's/^/  | /' v.txt; fi
    # Its node validity is cut at the CA's (30 days).
    nb=$(sed -n 's/^[[:space:]]*Not Before: //p' info.txt)
    na=$(sed -n 's/^[[:space:]]*Not After: //p' info.txt)
    span=$(( $(date -d "$na" +%s) - $(date -d "$nb" +%s) ))
    [ "$span" -le $((30 * 86400)) ] && ok "node validity within the CA's" || fail "node validity $span s"
fi
run 0 "$BIN" cert node --ca-cert ca.pem --ca-key ca.key --out-cert n2.pem --out-key n2.key \
    --cn "node two" --dns node2.example --ip 10.0.0.2 --days 7 &&
    certtool -i --infile n2.pem >info.txt 2>&1 &&
    has info.txt "DNSname: node2.example" && has info.txt "IPAddress: 10.0.0.2" &&
    has info.txt "CN=node two" && ! has info.txt "DNSname: localhost" &&
    ok "node certificate with --cn/--dns/--ip" || fail "node certificate with --cn/--dns/--ip"

# A second CA does not vouch for our nodes.
run 0 "$BIN" cert ca --out-cert ca2.pem --out-key ca2.key
if certtool --verify --load-ca-certificate ca2.pem --infile n1.pem >v.txt 2>&1; then
    fail "node verified against the wrong CA"
else ok "wrong CA rejects the node"; fi

# --------------------------------------------------------- fingerprint
if run 0 "$BIN" cert fingerprint n1.pem; then
    c=$(field cert-sha256); s=$(field spki-sha256); id=$(field node-id)
    want_c=$(certtool --fingerprint --hash=sha256 --infile n1.pem 2>/dev/null)
    want_s=$(certtool -i --infile n1.pem 2>/dev/null | sed -n '/Public Key ID:/,/sha256:/s/^[[:space:]]*sha256://p')
    [ "$c" = "$want_c" ] && ok "cert-sha256 equals certtool's" || fail "cert-sha256 $c != $want_c"
    [ "$s" = "$want_s" ] && ok "spki-sha256 equals certtool's public key id" || fail "spki-sha256 $s != $want_s"
    [ "$id" = "$(echo "$s" | cut -c1-16)" ] && ok "node id is the head of spki-sha256" || fail "node id $id"
    cp out.txt fp1.txt
    run 0 "$BIN" cert fingerprint n1.pem && cmp -s out.txt fp1.txt && ok "fingerprint stable" ||
        fail "fingerprint not stable"
    run 0 "$BIN" cert fingerprint n2.pem && [ "$(field node-id)" != "$id" ] &&
        ok "different keys, different node ids" || fail "node ids collide"
    # DER input works too.
    certtool --certificate-info --infile n1.pem --outder --outfile n1.der >/dev/null 2>&1 &&
        run 0 "$BIN" cert fingerprint n1.der && [ "$(field cert-sha256)" = "$c" ] &&
        ok "fingerprint of DER input" || fail "fingerprint of DER input"
fi

# ----------------------------------------------------------------- dev
if run 0 "$BIN" cert dev --out-cert dev.pem --out-key dev.key; then
    certtool -i --infile dev.pem >info.txt 2>&1
    has info.txt "Version: 3" && has info.txt "SECP256R1" &&
        has info.txt "Certificate Authority (CA): FALSE" && has info.txt "IPAddress: 127.0.0.1" &&
        ok "dev certificate shape" || fail "dev certificate shape"
    nb=$(sed -n 's/^[[:space:]]*Not Before: //p' info.txt)
    na=$(sed -n 's/^[[:space:]]*Not After: //p' info.txt)
    nbs=$(date -d "$nb" +%s); nas=$(date -d "$na" +%s); now=$(date +%s)
    [ $((nas - nbs)) -le $((14 * 86400)) ] && [ "$nbs" -le "$now" ] && [ "$now" -lt "$nas" ] &&
        ok "dev validity <= 14 days and includes now" || fail "dev validity $nb .. $na"
    printed=$(field cert-sha256)
    [ "$printed" = "$(certtool --fingerprint --hash=sha256 --infile dev.pem 2>/dev/null)" ] &&
        ok "dev prints the SHA-256 browsers pin" || fail "dev printed $printed"
    [ "$(stat -c %a dev.key)" = 600 ] && ok "dev key mode 0600" || fail "dev key mode"
fi

# -------------------------------------------------------- file errors
run 1 "$BIN" cert fingerprint missing.pem && has err.txt "missing.pem" &&
    has err.txt "No such file" && ok "missing file: exit 1, names the file" ||
    fail "missing file message: $(cat err.txt)"
printf 'garbage\n' >bad.pem
run 1 "$BIN" cert fingerprint bad.pem && has err.txt "bad.pem" && ok "garbage file: exit 1, names the file" ||
    fail "garbage file message: $(cat err.txt)"
run 1 "$BIN" cert node --ca-cert ca.pem --ca-key nope.key --out-cert x.pem --out-key x.key &&
    has err.txt "nope.key" && [ ! -e x.key ] && [ ! -e x.pem ] &&
    ok "missing CA key: exit 1, names the file, writes nothing" || fail "missing CA key: $(cat err.txt)"
run 1 "$BIN" cert node --ca-cert ca.pem --ca-key ca2.key --out-cert x.pem --out-key x.key &&
    has err.txt "does not match" && [ ! -e x.key ] && ok "CA key mismatch: exit 1" ||
    fail "CA key mismatch: $(cat err.txt)"
run 1 "$BIN" cert node --ca-cert n1.pem --ca-key n1.key --out-cert x.pem --out-key x.key &&
    has err.txt "not a CA" && ok "non-CA issuer: exit 1" || fail "non-CA issuer: $(cat err.txt)"
run 1 "$BIN" cert ca --out-cert nodir/ca.pem --out-key nodir/ca.key && has err.txt "nodir/ca.key" &&
    ok "unwritable output: exit 1, names the file" || fail "unwritable output: $(cat err.txt)"
if [ "$(id -u)" -ne 0 ]; then
    cp n1.pem locked.pem && chmod 000 locked.pem
    run 1 "$BIN" cert fingerprint locked.pem && has err.txt "locked.pem" && has err.txt "ermission" &&
        ok "unreadable file: exit 1" || fail "unreadable file: $(cat err.txt)"
fi
# Existing outputs are kept unless --force.
before=$(cat ca.key)
run 1 "$BIN" cert ca --out-cert ca.pem --out-key ca.key && has err.txt "already exists" &&
    [ "$(cat ca.key)" = "$before" ] && ok "existing outputs kept" || fail "existing outputs: $(cat err.txt)"
run 0 "$BIN" cert dev --out-cert dev.pem --out-key dev.key --force && ok "--force replaces" ||
    fail "--force"

# --------------------------------------------------------- usage errors
for args in "" "bogus" "cert" "cert bogus" "cert ca" "cert ca --out-cert a.pem" \
    "cert ca --out-cert a.pem --out-key a.key --bogus" "cert ca --out-cert a.pem --out-key a.key --days abc" \
    "cert ca --out-cert a.pem --out-key a.key --days 0" "cert dev --out-cert a.pem --out-key a.key --days 15" \
    "cert node --out-cert a.pem --out-key a.key" "cert fingerprint" "cert fingerprint a.pem b.pem" \
    "cert ca --out-cert a.pem --out-key a.key --dns x" "cert ca --out-cert a.pem" "version extra" \
    "cert ca --out-cert a.pem --out-key"; do
    # shellcheck disable=SC2086 # word splitting is the point
    if run 2 "$BIN" $args; then
        if [ -n "$args" ] && ! grep -q "starling:" err.txt; then fail "'$args': no message"; fi
    fi
done
[ ! -e a.pem ] && [ ! -e a.key ] && ok "usage errors write nothing" || fail "usage error wrote files"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed"; exit 1
fi
echo "all cert tool checks passed"
