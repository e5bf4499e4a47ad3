#!/usr/bin/env bash
# Regenerates the keystore fixtures of strom-client's unit tests (client/src/security/
# keystore_tests.rs) in this directory, and the seeds of the keystore fuzz targets
# (fuzz/corpus/client_keystore_{jks,pkcs12}/seed-*), with Java's keytool and OpenSSL 3.
#
#   client/tests/data/keystores/generate.sh
#
# Everything comes from a throwaway CA made here (its key is not kept), NOT the test
# broker's: these files only exercise the readers. Store and key password: changeit, except
# keystore-keypass.jks (key password keypass1). What each file is:
#
#   ca.pem, client.pem, client.key        the CA, the client certificate it signed, its key (PKCS#8, clear)
#   keystore-openssl.p12                  openssl pkcs12 -export, OpenSSL 3 defaults (PBES2/PBKDF2-SHA256/AES-256-CBC, MAC SHA-256)
#   keystore-openssl-legacy.p12           openssl pkcs12 -export -legacy (keys 3DES, certs RC2-40, MAC SHA-1)
#   keystore-openssl-2des-rc2-128.p12     openssl, keys pbeWithSHAAnd2-KeyTripleDES-CBC, certs pbeWithSHAAnd128BitRC2-CBC
#   keystore-keytool.p12                  keytool -importkeystore, Java 17 defaults (the same family as OpenSSL 3's)
#   keystore-keytool-legacy.p12           keytool -J-Dkeystore.pkcs12.legacy: what Java 8 writes (3DES, RC2-40, SHA-1)
#   keystore.jks                          keytool -deststoretype JKS
#   keystore-keypass.jks                  JKS whose key password differs from the store's
#   keystore-java-ec.p12                  keytool -genkeypair -keyalg EC (P-256): Java's EC key encoding, no public key
#   keystore-java-ec384.jks               the same in JKS, P-384
#   truststore-keytool.p12                keytool -importcert (certificates encrypted: needs the password)
#   truststore-nopass.p12                 keytool with no certificate protection and no MAC (Java 18+'s password-less store)
#   truststore.jks                        keytool -importcert -storetype JKS
#   truststore-openssl.p12                openssl pkcs12 -export -nokeys: no trusted-certificate attribute (Java ignores it)
#   two-keys.p12, two-keys.jks            two private key entries (aliases client and other)
#   truststore.jceks                      JCEKS (refused)
#   client-encrypted.pem                  key as ENCRYPTED PRIVATE KEY (PBES2, AES-256-CBC) + certificate
#   client-encrypted-3des.pem             key as ENCRYPTED PRIVATE KEY (PKCS#12 PBE, SHA-1 and 3DES) + certificate
#   client-traditional-encrypted.pem      key encrypted the legacy OpenSSL way (Proc-Type: 4,ENCRYPTED): refused
#
# The fuzz seeds are the same kinds of store with iteration counts of 1 (the fuzz entry
# points refuse more than 64, so runs stay fast).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
command -v keytool >/dev/null || { echo "keytool not found: install a JDK (Debian: openjdk-17-jdk-headless)" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl not found: install openssl" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
pw=changeit
kt() { keytool "$@" >/dev/null 2>&1 || { echo "keytool $* failed" >&2; keytool "$@"; exit 1; }; }

# --- a throwaway CA and two client keys ------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 36500 \
  -keyout ca.key -out ca.pem -subj "/CN=Strom keystore test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >leaf.ext
leaf() { # name curve
  openssl req -new -newkey ec -pkeyopt "ec_paramgen_curve:$2" -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=strom-keystore-test-$1" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial ca.srl -sha256 \
    -days 36500 -extfile leaf.ext -out "$1.pem" 2>/dev/null
}
leaf client P-256
leaf other P-384

# --- PKCS12 from OpenSSL ---------------------------------------------------------------
p12() { # out extra-args...
  local out=$1
  shift
  openssl pkcs12 -export -in client.pem -inkey client.key -certfile ca.pem -name client \
    -passout "pass:$pw" -out "$out" "$@"
}
p12 keystore-openssl.p12
p12 keystore-openssl-legacy.p12 -legacy
p12 keystore-openssl-2des-rc2-128.p12 -legacy -keypbe PBE-SHA1-2DES -certpbe PBE-SHA1-RC2-128
openssl pkcs12 -export -in other.pem -inkey other.key -certfile ca.pem -name other -passout "pass:$pw" -out other.p12
openssl pkcs12 -export -nokeys -in ca.pem -name ca -passout "pass:$pw" -out truststore-openssl.p12

# --- keytool ---------------------------------------------------------------------------
imp() { # src dest type extra-args...
  local src=$1 dest=$2 type=$3
  shift 3
  kt -importkeystore -noprompt -srckeystore "$src" -srcstoretype PKCS12 -srcstorepass "$pw" \
    -destkeystore "$dest" -deststoretype "$type" -deststorepass "$pw" "$@"
}
imp keystore-openssl.p12 keystore-keytool.p12 PKCS12
imp keystore-openssl.p12 keystore-keytool-legacy.p12 PKCS12 -J-Dkeystore.pkcs12.legacy
imp keystore-openssl.p12 keystore.jks JKS
imp keystore-openssl.p12 keystore-keypass.jks JKS -srcalias client -destkeypass keypass1
cp keystore-keytool.p12 two-keys.p12
imp other.p12 two-keys.p12 PKCS12
cp keystore.jks two-keys.jks
imp other.p12 two-keys.jks JKS
# Keys that Java itself generates: its EC keys have no public key in their PKCS#8.
gen() { # dest type curve extra-args...
  local dest=$1 type=$2 curve=$3
  shift 3
  kt -genkeypair -alias java -keyalg EC -groupname "$curve" -dname "CN=strom-keystore-test-java" -validity 36500 \
    -keystore "$dest" -storetype "$type" -storepass "$pw" "$@"
}
gen keystore-java-ec.p12 PKCS12 secp256r1
gen keystore-java-ec384.jks JKS secp384r1
trust() { # dest type extra-args...
  local dest=$1 type=$2
  shift 2
  kt -importcert -noprompt -trustcacerts -alias ca -file ca.pem -keystore "$dest" -storetype "$type" \
    -storepass "$pw" "$@"
}
trust truststore-keytool.p12 PKCS12
trust truststore-nopass.p12 PKCS12 -J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE \
  -J-Dkeystore.pkcs12.macAlgorithm=NONE
trust truststore.jks JKS
trust truststore.jceks JCEKS

# --- encrypted PEM keys ----------------------------------------------------------------
openssl pkcs8 -topk8 -in client.key -v2 aes-256-cbc -passout "pass:$pw" -out enc.key
cat enc.key client.pem >client-encrypted.pem
openssl pkcs8 -topk8 -in client.key -v1 PBE-SHA1-3DES -passout "pass:$pw" -out enc3.key
cat enc3.key client.pem >client-encrypted-3des.pem
openssl pkey -in client.key -aes256 -passout "pass:$pw" -traditional -out trad.key
cat trad.key client.pem >client-traditional-encrypted.pem

rm -f "$here"/*.p12 "$here"/*.jks "$here"/*.jceks "$here"/*.pem "$here"/*.key
cp ca.pem client.pem client.key keystore-*.p12 keystore*.jks truststore* two-keys.* client-*.pem "$here/"
chmod 644 "$here"/*.p12 "$here"/*.jks "$here"/*.jceks "$here"/*.pem "$here"/*.key

# --- fuzz seeds: the same kinds with iteration counts of 1 -----------------------------
seeds="$tmp/seeds"
mkdir -p "$seeds"
p12 "$seeds/openssl.p12" -iter 1 -nomaciter
p12 "$seeds/openssl-legacy.p12" -legacy -iter 1 -nomaciter
one=(-J-Dkeystore.pkcs12.keyPbeIterationCount=1 -J-Dkeystore.pkcs12.certPbeIterationCount=1
  -J-Dkeystore.pkcs12.macIterationCount=1)
imp keystore-openssl.p12 "$seeds/keytool.p12" PKCS12 "${one[@]}"
# (-J-Dkeystore.pkcs12.legacy ignores the iteration counts: its algorithms one by one.)
imp keystore-openssl.p12 "$seeds/keytool-legacy.p12" PKCS12 "${one[@]}" \
  -J-Dkeystore.pkcs12.keyProtectionAlgorithm=PBEWithSHA1AndDESede \
  -J-Dkeystore.pkcs12.certProtectionAlgorithm=PBEWithSHA1AndRC2_40 -J-Dkeystore.pkcs12.macAlgorithm=HmacPBESHA1
trust "$seeds/truststore-keytool.p12" PKCS12 "${one[@]}"
gen "$seeds/java-ec.p12" PKCS12 secp256r1 "${one[@]}"
cp truststore-nopass.p12 "$seeds/"
openssl pkcs12 -export -nokeys -in ca.pem -name ca -passout "pass:$pw" -iter 1 -nomaciter -out "$seeds/truststore-openssl.p12"
cp "$seeds/keytool.p12" "$seeds/two-keys.p12"
imp other.p12 "$seeds/two-keys.p12" PKCS12 "${one[@]}"
jks="$root/fuzz/corpus/client_keystore_jks"
pk="$root/fuzz/corpus/client_keystore_pkcs12"
mkdir -p "$jks" "$pk"
rm -f "$jks"/seed-* "$pk"/seed-*
for f in keystore.jks keystore-keypass.jks keystore-java-ec384.jks truststore.jks two-keys.jks truststore.jceks; do
  cp "$f" "$jks/seed-$f"
done
for f in "$seeds"/*.p12; do
  cp "$f" "$pk/seed-$(basename "$f")"
done
chmod 644 "$jks"/seed-* "$pk"/seed-*
echo "wrote $(ls "$here" | grep -vc generate.sh) fixtures in $here and seeds in $jks, $pk"
