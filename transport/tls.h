/*
 * tls.h: TLS 1.3 credentials, peer verification and node identity for the
 * QUIC transport, plus the certificate helpers behind `starling cert`.
 * Internal (sl__tls_*); see the narrative at the top of tls.c.
 *
 * One credentials object per endpoint serves both roles: the transport
 * listens and connects with the same certificate, and the role is chosen per
 * session in sl__tls_session_setup(). All calls on one thread, except the
 * file helpers, which share nothing.
 *
 * Errors: SL_ERR_IO for files that are missing or unreadable (the message
 * names the path and gives strerror), SL_ERR_TLS for what GnuTLS rejects
 * (the message gives gnutls_strerror), SL_ERR_INVAL for bad settings,
 * SL_ERR_NOMEM. Functions that have no credentials object to keep the message
 * in print it to stderr as one line starting with "starling: ".
 */
#ifndef SL_TRANSPORT_TLS_H
#define SL_TRANSPORT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#include "starling/common.h"
#include "starling/transport.h"

/*
 * The TLS 1.3-only priority string every session gets (ngtcp2's choice for
 * QUIC: AEADs QUIC can use, the usual groups, no middlebox compatibility
 * mode).
 */
#define SL__TLS_PRIORITY                                                                           \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "+AES-128-CCM:-GROUP-ALL:+GROUP-SECP256R1:+GROUP-X25519:+GROUP-SECP384R1:"                     \
    "+GROUP-SECP521R1:%DISABLE_TLS13_COMPAT_MODE"

/* Longest development certificate validity Chromium accepts for pinning. */
#define SL__TLS_DEV_MAX_DAYS 14

/* ------------------------------------------------------------ credentials */

typedef struct sl__tls_creds sl__tls_creds;

/*
 * Build the credentials of one endpoint from `s` (copied; nothing in `s` is
 * referenced afterwards). The endpoint always has a certificate:
 *  - cert_file + key_file (PEM; the cert file may hold the chain, leaf
 *    first): loaded; the key must match the leaf and the leaf must not have
 *    expired;
 *  - both NULL: a development certificate is generated in memory (ECDSA
 *    P-256, X.509 v3, self-signed, CA:FALSE, digitalSignature, EKU server +
 *    client auth, SAN localhost/127.0.0.1/::1, valid from now - 60 s for
 *    14 days - 1 min) and one line with its SHA-256 is printed to stderr.
 *    Clients get one too, so a node without files still has a node id; a
 *    server that requires CA-signed client certificates rejects it.
 * ca_file (PEM, one or more CA certificates) becomes the trust anchor for
 * SL_VERIFY_CA. SL_VERIFY_NONE_INSECURE_DEV_ONLY prints one loud warning line
 * to stderr here. Settings that only matter when verifying are checked where
 * they are needed: here if require_client_cert (the server verifies
 * clients), else in sl__tls_session_setup() for a client session.
 * `mem` (NULL = C library) allocates the object; GnuTLS allocates its own
 * state with its own allocator.
 * Returns SL_OK, SL_ERR_INVAL (NULL argument, unknown verify mode, only one
 * of cert_file/key_file, require_client_cert with SL_VERIFY_CA and no
 * ca_file or a PIN mode with an all-zero pin), SL_ERR_IO (a file is missing
 * or unreadable), SL_ERR_TLS (a file does not parse, key does not match,
 * certificate expired, GnuTLS failure), SL_ERR_NOMEM. On failure one line
 * explaining it is printed to stderr and *out is untouched.
 */
int sl__tls_creds_new(const sl_tls_settings *s, const sl_mem *mem, sl__tls_creds **out);

/* Free credentials (NULL is fine). Every session using them must be gone. */
void sl__tls_creds_del(sl__tls_creds *c);

/*
 * Prepare a session created with gnutls_init(GNUTLS_SERVER or GNUTLS_CLIENT,
 * ...) before its handshake: sets the TLS 1.3 priority, the certificate
 * credentials, this module's verify function for the session's role
 * (gnutls_session_set_verify_function), and
 *  - server: the certificate request (GNUTLS_CERT_REQUIRE when
 *    require_client_cert, else GNUTLS_CERT_IGNORE) without a CA name list;
 *  - client: SNI = server_name when it is a DNS name (never for IP
 *    literals). The server name is also checked against the server's
 *    certificate in SL_VERIFY_CA mode.
 * Uses neither gnutls_session_set_ptr (ngtcp2's) nor the handshake hook nor
 * the transport pointer: the verify function finds `c` through the session's
 * credentials (see tls.c). Independent of ngtcp2_crypto_gnutls_configure_*:
 * either order works. `c` must outlive the session.
 * Returns SL_OK, SL_ERR_INVAL (NULL argument; or a client session whose mode
 * cannot verify: SL_VERIFY_CA without ca_file, PIN mode with a zero pin; the
 * reason is in sl__tls_last_error), SL_ERR_TLS (GnuTLS refused a setting).
 */
int sl__tls_session_setup(const sl__tls_creds *c, gnutls_session_t session, bool server);

/*
 * The reason of the last failure seen by `c`: a session setup that failed
 * or, most usefully, the last peer certificate the verify function rejected
 * (e.g. "peer certificate rejected: The certificate issuer is unknown.").
 * Read it right after a handshake step failed with GNUTLS_E_CERTIFICATE_ERROR
 * (one thread: nothing else ran in between). "" when there was none. Valid
 * until the next call that uses `c`.
 */
const char *sl__tls_last_error(const sl__tls_creds *c);

/* SHA-256 of our leaf certificate's DER (what browsers pin). Returns SL_OK or SL_ERR_INVAL. */
int sl__tls_cert_sha256(const sl__tls_creds *c, uint8_t out[32]);
/* SHA-256 of our leaf's SubjectPublicKeyInfo DER. Returns SL_OK or SL_ERR_INVAL. */
int sl__tls_spki_sha256(const sl__tls_creds *c, uint8_t out[32]);
/* Our node id (see sl__tls_node_id_of_spki). Returns SL_OK or SL_ERR_INVAL. */
int sl__tls_own_node_id(const sl__tls_creds *c, uint64_t *out);
/* A 32-byte secret derived from our private key and `label` (stable across
 * restarts with the same key). Returns SL_OK, SL_ERR_INVAL, SL_ERR_TLS. */
int sl__tls_key_secret(const sl__tls_creds *c, const char *label, uint8_t out[32]);
/* True when the certificate was generated (no cert_file/key_file). */
bool sl__tls_creds_generated(const sl__tls_creds *c);

/*
 * The peer's node id: the first 8 bytes, big endian, of SHA-256 over the
 * DER SubjectPublicKeyInfo of the peer's leaf certificate, exactly as it is
 * in the certificate. Valid once the verify function has run (during or
 * after the handshake). Returns SL_OK, SL_ERR_NOTFOUND (no peer certificate:
 * e.g. a server that did not ask for one), SL_ERR_TLS (malformed), SL_ERR_INVAL.
 */
int sl__tls_peer_node_id(gnutls_session_t session, uint64_t *out);
/* SHA-256 of the peer's leaf certificate DER. Same returns as above. */
int sl__tls_peer_cert_sha256(gnutls_session_t session, uint8_t out[32]);

/* ------------------------------------------------ identity of DER bytes */

/*
 * Locate the SubjectPublicKeyInfo (tag, length and contents) inside a DER
 * X.509 certificate. Returns SL_OK or SL_ERR_TLS (not a certificate).
 */
int sl__tls_der_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len);
/* Node id from an SPKI SHA-256: its first 8 bytes, big endian. */
uint64_t sl__tls_node_id_of_spki(const uint8_t spki_sha256[32]);

/* ---------------------------------------------------- files (`starling cert`) */

/* Options for the certificate helpers. Zeroed = defaults. */
typedef struct sl__tls_cert_opts {
    const char *cn;         /* subject CN; NULL = "Starling cluster CA", "starling node <id>"
                               or "starling dev <id>" */
    unsigned days;          /* validity from now - 60 s, minus 60 s; 0 = 3650 (CA), 365 (node),
                               14 (dev); at most 36500, and 14 for dev */
    int64_t not_before;     /* if not_after != 0: explicit window in UNIX seconds, overriding */
    int64_t not_after;      /*   days (tests use it for expired certificates) */
    const char *const *dns; /* subjectAltName DNS names (node, dev) */
    size_t n_dns;
    const char *const *ip; /* subjectAltName IP literals, v4 or v6 (node, dev) */
    size_t n_ip;           /* no dns and no ip: localhost, 127.0.0.1 and ::1 */
    bool overwrite;        /* replace existing output files; default: SL_ERR_EXISTS */
} sl__tls_cert_opts;

/*
 * Create a cluster CA: an ECDSA P-256 key and a self-signed X.509 v3
 * certificate (CA:TRUE pathlen 0, keyCertSign + cRLSign). The key file is
 * PKCS#8 PEM written with mode 0600, the certificate PEM with 0644 (both
 * before umask). Neither file is written unless both can be prepared; a
 * failure after the key was written removes it. `o` may be NULL.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_EXISTS (an output exists and
 * !o->overwrite), SL_ERR_IO, SL_ERR_TLS, SL_ERR_NOMEM; errors are printed.
 */
int sl__tls_make_ca(const char *cert_path, const char *key_path, const sl__tls_cert_opts *o);

/*
 * Issue a node certificate signed by the CA in ca_cert/ca_key: a new ECDSA
 * P-256 key, X.509 v3, CA:FALSE, digitalSignature, EKU serverAuth +
 * clientAuth, SAN from `o`, authorityKeyIdentifier = the CA's. Its validity
 * is cut to end no later than the CA's. The CA must be a CA, unexpired, and
 * its key must match. Files as in sl__tls_make_ca.
 * Returns as sl__tls_make_ca.
 */
int sl__tls_issue_node_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                            const char *key_path, const sl__tls_cert_opts *o);

/*
 * Write a self-signed development certificate as sl__tls_creds_new would
 * generate it (at most SL__TLS_DEV_MAX_DAYS days). Returns as sl__tls_make_ca.
 */
int sl__tls_make_dev_cert(const char *cert_path, const char *key_path, const sl__tls_cert_opts *o);

/*
 * Fingerprints of the first (leaf) certificate in a PEM or DER file. Any
 * output pointer may be NULL. Returns SL_OK, SL_ERR_IO (missing,
 * unreadable), SL_ERR_TLS (no certificate in it), SL_ERR_NOMEM; errors
 * are printed.
 */
int sl__tls_fingerprint(const char *cert_path, uint8_t cert_sha256[32], uint8_t spki_sha256[32],
                        uint64_t *node_id);

/* Lowercase hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void sl__tls_hex(const uint8_t *p, size_t n, char *out);

#endif
