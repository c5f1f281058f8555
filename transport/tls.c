/*
 * tls.c: TLS 1.3 credentials, peer verification and node identity for the
 * QUIC transport, and the certificate helpers behind `starling cert`.
 *
 * An endpoint has one sl__tls_creds: a GnuTLS certificate credentials object
 * holding its certificate and key (loaded from PEM files, or a development
 * certificate generated in memory), the trust anchors (ca_file), a parsed
 * TLS 1.3-only priority cache, and a copy of what verification needs (mode,
 * pin, server name). The QUIC code calls sl__tls_session_setup() on each
 * gnutls session; it installs this module's verify function for the
 * session's role, and GnuTLS calls that function during the handshake, once
 * the peer's Certificate and CertificateVerify have been checked. Rejecting
 * there makes the handshake fail with GNUTLS_E_CERTIFICATE_ERROR (ngtcp2
 * turns it into a CRYPTO_ERROR close), and the reason is kept in the
 * credentials for sl__tls_last_error().
 *
 * How the verify function finds its settings without any global and without
 * gnutls_session_get_ptr (ngtcp2 owns that pointer): the session's
 * credentials come back from gnutls_credentials_get(), their trust list from
 * gnutls_certificate_get_trust_list(), and that trust list carries a user
 * pointer (gnutls_x509_trust_list_set_ptr, GnuTLS >= 3.7.0) which GnuTLS
 * itself never reads. We store the sl__tls_creds there. The role comes from
 * which of two functions was installed on the session.
 *
 * Modes: CA checks the chain to ca_file, the validity dates, the key purpose
 * (serverAuth when we are the client, clientAuth when we are the server; a
 * certificate without EKU passes) and, for a client with server_name, the
 * name. PIN_CERT compares SHA-256 of the leaf DER, PIN_SPKI SHA-256 of the
 * leaf's SubjectPublicKeyInfo DER; both also require "now" inside the leaf's
 * validity, as browsers do for pinned certificates. NONE accepts anything
 * (the peer still proves it holds the key of the certificate it sent, so its
 * node id is still bound to that key).
 *
 * The node id is the first 8 bytes (big endian) of SHA-256 over the leaf's
 * SubjectPublicKeyInfo, taken byte for byte from the certificate with a
 * small bounds-checked DER walk, so it equals what openssl or a browser's
 * SPKI pin computes.
 *
 * The file helpers generate ECDSA P-256 keys and X.509 v3 certificates with
 * GnuTLS's x509 API and write keys as PKCS#8 PEM with mode 0600.
 */
#include "transport/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#define CREDS_MAGIC 0x534c544c53435231ull /* "SLTLSCR1": guards the trust-list pointer */
#define ERR_MAX 512
#define FILE_MAX (4u << 20) /* largest PEM file we read */
#define BACKDATE 60         /* seconds notBefore lies in the past (clock skew) */
#define DAY 86400
#define MAX_DAYS 36500

struct sl__tls_creds {
    uint64_t magic;                        /* CREDS_MAGIC while alive */
    sl_mem mem;                            /* resolved allocator for this object */
    gnutls_certificate_credentials_t cred; /* our cert + key, trust anchors */
    gnutls_priority_t prio;                /* SL__TLS_PRIORITY, parsed once */
    uint8_t verify;                        /* sl_verify for the peer's certificate */
    uint8_t pin[32];                       /* for the PIN modes */
    bool require_client_cert;              /* server sessions ask for a client cert */
    bool has_ca;                           /* ca_file was loaded */
    bool generated;                        /* development certificate made in memory */
    char *server_name;                     /* copy of settings.server_name, or NULL */
    bool server_name_is_ip;                /* it is an IP literal: no SNI */
    uint8_t cert_sha256[32];               /* of our leaf DER */
    uint8_t spki_sha256[32];               /* of our leaf's SubjectPublicKeyInfo */
    char err[ERR_MAX];                     /* last failure, "" if none */
};

/* ----------------------------------------------------------- small helpers */

/* Where error text goes: a buffer, then (for helpers) stderr. */
typedef struct errbuf {
    char msg[ERR_MAX];
} errbuf;

static void seterr(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void seterr(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, ERR_MAX, fmt, ap);
    va_end(ap);
}

/* Record a GnuTLS failure: "<what>: <gnutls message>"; returns SL_ERR_TLS (or NOMEM). */
static int tls_fail(char *buf, int gnutls_rc, const char *what)
{
    seterr(buf, "%s: %s", what, gnutls_strerror(gnutls_rc));
    return gnutls_rc == GNUTLS_E_MEMORY_ERROR ? SL_ERR_NOMEM : SL_ERR_TLS;
}

static void print_err(const char *msg)
{
    fprintf(stderr, "starling: %s\n", msg);
}

void sl__tls_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void fmt_time(time_t t, char out[32])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 32, "%Y-%m-%d %H:%M:%S UTC", &tm))
        snprintf(out, 32, "%lld", (long long)t);
}

/* Constant-time comparison of two 32-byte hashes; true when equal. */
static bool hash_eq(const uint8_t a[32], const uint8_t b[32])
{
    uint8_t d = 0;
    for (int i = 0; i < 32; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

static bool all_zero(const uint8_t p[32])
{
    uint8_t d = 0;
    for (int i = 0; i < 32; i++)
        d |= p[i];
    return d == 0;
}

static bool is_ip_literal(const char *s)
{
    uint8_t buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static void resolve_mem(const sl_mem *in, sl_mem *out)
{
    *out = *sl_mem_default();
    if (!in)
        return;
    if (in->malloc)
        out->malloc = in->malloc;
    if (in->free)
        out->free = in->free;
    if (in->calloc)
        out->calloc = in->calloc;
    if (in->realloc)
        out->realloc = in->realloc;
    out->ud = in->ud;
}

static char *mem_strdup(const sl_mem *m, const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = m->malloc(n, m->ud);
    if (p)
        memcpy(p, s, n);
    return p;
}

/*
 * Read a whole (small) file into memory from `m`. On success d->data must be
 * released with m->free (after wiping it if it held a key).
 * Returns SL_OK, SL_ERR_IO (with "path: reason" in buf), SL_ERR_NOMEM.
 */
static int read_file(const sl_mem *m, const char *path, const char *role, gnutls_datum_t *d,
                     char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(buf, "%s %s: cannot open: %s", role, path, strerror(errno));
        return SL_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        seterr(buf, "%s %s: cannot stat: %s", role, path, strerror(errno));
        close(fd);
        return SL_ERR_IO;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(buf, "%s %s: not a regular file", role, path);
        close(fd);
        return SL_ERR_IO;
    }
    if (st.st_size > (off_t)FILE_MAX) {
        seterr(buf, "%s %s: too large (%lld bytes; at most %u)", role, path, (long long)st.st_size,
               FILE_MAX);
        close(fd);
        return SL_ERR_IO;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    uint8_t *p = m->malloc(cap, m->ud);
    if (!p) {
        close(fd);
        seterr(buf, "%s %s: out of memory", role, path);
        return SL_ERR_NOMEM;
    }
    for (;;) {
        if (len == cap - 1) /* file grew since fstat: keep what fstat promised */
            break;
        ssize_t r = read(fd, p + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            seterr(buf, "%s %s: cannot read: %s", role, path, strerror(errno));
            m->free(p, m->ud);
            close(fd);
            return SL_ERR_IO;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    if (len == 0) {
        seterr(buf, "%s %s: file is empty", role, path);
        m->free(p, m->ud);
        return SL_ERR_TLS;
    }
    p[len] = '\0';
    d->data = p;
    d->size = (unsigned)len;
    return SL_OK;
}

static void free_datum(const sl_mem *m, gnutls_datum_t *d, bool wipe)
{
    if (!d->data)
        return;
    if (wipe)
        gnutls_memset(d->data, 0, d->size);
    m->free(d->data, m->ud);
    d->data = NULL;
    d->size = 0;
}

/* ------------------------------------------------------------- DER walking */

/* Parse one DER header at p[0..n): tag, header length, content length. 0 or -1. */
static int der_header(const uint8_t *p, size_t n, uint8_t *tag, size_t *hdr, size_t *len)
{
    if (n < 2 || (p[0] & 0x1f) == 0x1f) /* short input, or a multi-byte tag (not in X.509) */
        return -1;
    size_t l = p[1], h = 2;
    if (l & 0x80) {
        size_t k = l & 0x7f;
        if (k == 0 || k > 4 || k > n - 2) /* indefinite or absurd lengths are not DER certs */
            return -1;
        l = 0;
        for (size_t i = 0; i < k; i++)
            l = (l << 8) | p[2 + i];
        h = 2 + k;
    }
    if (l > n - h)
        return -1;
    *tag = p[0];
    *hdr = h;
    *len = l;
    return 0;
}

int sl__tls_der_spki(const uint8_t *der, size_t len, const uint8_t **spki, size_t *spki_len)
{
    uint8_t tag;
    size_t h, l;
    if (!der || !spki || !spki_len)
        return SL_ERR_INVAL;
    /* Certificate ::= SEQUENCE { tbsCertificate, ... } */
    if (der_header(der, len, &tag, &h, &l) || tag != 0x30)
        return SL_ERR_TLS;
    const uint8_t *p = der + h;
    size_t n = l;
    /* TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serial, signature,
     * issuer, validity, subject, subjectPublicKeyInfo, ... } */
    if (der_header(p, n, &tag, &h, &l) || tag != 0x30)
        return SL_ERR_TLS;
    p += h;
    n = l;
    static const uint8_t skip[] = {0x02, 0x30, 0x30, 0x30, 0x30}; /* serial .. subject */
    if (der_header(p, n, &tag, &h, &l))
        return SL_ERR_TLS;
    if (tag == 0xa0) { /* version */
        p += h + l;
        n -= h + l;
    }
    for (size_t i = 0; i < sizeof skip; i++) {
        if (der_header(p, n, &tag, &h, &l) || tag != skip[i])
            return SL_ERR_TLS;
        p += h + l;
        n -= h + l;
    }
    if (der_header(p, n, &tag, &h, &l) || tag != 0x30)
        return SL_ERR_TLS;
    *spki = p;
    *spki_len = h + l;
    return SL_OK;
}

uint64_t sl__tls_node_id_of_spki(const uint8_t spki_sha256[32])
{
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id = (id << 8) | spki_sha256[i];
    return id;
}

/* SHA-256 of a DER certificate and of its SPKI. SL_OK or SL_ERR_TLS. */
static int der_hashes(const gnutls_datum_t *der, uint8_t cert_sha[32], uint8_t spki_sha[32])
{
    const uint8_t *spki;
    size_t spki_len;
    uint8_t tmp[32];
    int rc = sl__tls_der_spki(der->data, der->size, &spki, &spki_len);
    if (rc != SL_OK)
        return rc;
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, der->data, der->size, cert_sha ? cert_sha : tmp) < 0 ||
        gnutls_hash_fast(GNUTLS_DIG_SHA256, spki, spki_len, spki_sha ? spki_sha : tmp) < 0)
        return SL_ERR_TLS;
    return SL_OK;
}

/* Hashes of a parsed certificate. */
static int crt_hashes(gnutls_x509_crt_t crt, uint8_t cert_sha[32], uint8_t spki_sha[32], char *buf)
{
    gnutls_datum_t der = {NULL, 0};
    int r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der);
    if (r < 0)
        return tls_fail(buf, r, "cannot encode certificate");
    int rc = der_hashes(&der, cert_sha, spki_sha);
    gnutls_free(der.data);
    if (rc != SL_OK)
        seterr(buf, "certificate has no SubjectPublicKeyInfo");
    return rc;
}

/* ----------------------------------------------------- certificate making */

enum kind { KIND_CA, KIND_NODE, KIND_DEV };

/* Validity window for a new certificate of `kind` from the options. */
static int validity(enum kind k, const sl__tls_cert_opts *o, time_t now, time_t *nb, time_t *na,
                    char *buf)
{
    if (o && o->not_after != 0) {
        if (o->not_after <= o->not_before) {
            seterr(buf, "invalid validity window (notAfter must be after notBefore)");
            return SL_ERR_INVAL;
        }
        *nb = (time_t)o->not_before;
        *na = (time_t)o->not_after;
        return SL_OK;
    }
    unsigned days = o ? o->days : 0;
    unsigned max = k == KIND_DEV ? SL__TLS_DEV_MAX_DAYS : MAX_DAYS;
    if (days == 0)
        days = k == KIND_CA ? 3650 : k == KIND_NODE ? 365 : SL__TLS_DEV_MAX_DAYS;
    if (days > max) {
        seterr(buf, "validity of %u days is too long (at most %u%s)", days, max,
               k == KIND_DEV ? " for a development certificate, which browsers pin" : "");
        return SL_ERR_INVAL;
    }
    /* notAfter - notBefore = days - 1 min: under Chromium's 14-day limit for dev certs. */
    *nb = now - BACKDATE;
    *na = *nb + (time_t)days * DAY - BACKDATE;
    return SL_OK;
}

/* Add the subjectAltNames of `o` (or the loopback defaults). */
static int add_sans(gnutls_x509_crt_t crt, const sl__tls_cert_opts *o, char *buf)
{
    static const char *const def_dns[] = {"localhost"};
    static const char *const def_ip[] = {"127.0.0.1", "::1"};
    const char *const *dns = def_dns, *const *ip = def_ip;
    size_t n_dns = 1, n_ip = 2;
    if (o && (o->n_dns || o->n_ip)) {
        dns = o->dns;
        n_dns = o->n_dns;
        ip = o->ip;
        n_ip = o->n_ip;
    }
    for (size_t i = 0; i < n_dns; i++) {
        if (!dns || !dns[i] || !dns[i][0] || is_ip_literal(dns[i])) {
            seterr(buf, "invalid DNS name for subjectAltName: '%s'",
                   dns && dns[i] ? dns[i] : "(null)");
            return SL_ERR_INVAL;
        }
        int r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, dns[i],
                                                     (unsigned)strlen(dns[i]), GNUTLS_FSAN_APPEND);
        if (r < 0)
            return tls_fail(buf, r, "cannot set subjectAltName");
    }
    for (size_t i = 0; i < n_ip; i++) {
        uint8_t raw[16];
        unsigned sz = 0;
        if (ip && ip[i] && inet_pton(AF_INET, ip[i], raw) == 1)
            sz = 4;
        else if (ip && ip[i] && inet_pton(AF_INET6, ip[i], raw) == 1)
            sz = 16;
        if (!sz) {
            seterr(buf, "invalid IP address for subjectAltName: '%s'",
                   ip && ip[i] ? ip[i] : "(null)");
            return SL_ERR_INVAL;
        }
        int r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, raw, sz,
                                                     GNUTLS_FSAN_APPEND);
        if (r < 0)
            return tls_fail(buf, r, "cannot set subjectAltName");
    }
    return SL_OK;
}

/*
 * Generate a key and a certificate of `kind`, signed by issuer/issuer_key
 * (both NULL: self-signed). On success the caller owns *crt_out and *key_out.
 * Returns SL_OK, SL_ERR_INVAL, SL_ERR_TLS, SL_ERR_NOMEM with text in buf.
 */
static int make_cert(enum kind k, const sl__tls_cert_opts *o, gnutls_x509_crt_t issuer,
                     gnutls_x509_privkey_t issuer_key, gnutls_x509_crt_t *crt_out,
                     gnutls_x509_privkey_t *key_out, char *buf)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    time_t nb, na;
    int rc, r;
    const char *step = "";

    if ((rc = validity(k, o, time(NULL), &nb, &na, buf)) != SL_OK)
        return rc;
    if (issuer) { /* a node certificate never outlives its CA */
        time_t ca_end = gnutls_x509_crt_get_expiration_time(issuer);
        if (ca_end != (time_t)-1 && na > ca_end)
            na = ca_end;
        if (na <= nb) {
            seterr(buf, "the CA certificate expires before the new certificate would start");
            return SL_ERR_INVAL;
        }
    }

#define TRY(what, call)                                                                            \
    do {                                                                                           \
        step = (what);                                                                             \
        if ((r = (call)) < 0)                                                                      \
            goto fail_tls;                                                                         \
    } while (0)

    TRY("cannot create key", gnutls_x509_privkey_init(&key));
    TRY("cannot generate ECDSA P-256 key",
        gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
                                     GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0));
    TRY("cannot create certificate", gnutls_x509_crt_init(&crt));
    TRY("cannot set certificate version", gnutls_x509_crt_set_version(crt, 3));
    TRY("cannot set public key", gnutls_x509_crt_set_key(crt, key));

    uint8_t serial[16];
    TRY("cannot make serial", gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof serial));
    serial[0] = (uint8_t)((serial[0] & 0x7f) | 0x40); /* positive, full length */
    TRY("cannot set serial", gnutls_x509_crt_set_serial(crt, serial, sizeof serial));
    TRY("cannot set notBefore", gnutls_x509_crt_set_activation_time(crt, nb));
    TRY("cannot set notAfter", gnutls_x509_crt_set_expiration_time(crt, na));

    /* Subject: the given CN, or a default naming the node id. */
    char cn_buf[64];
    const char *cn = o && o->cn ? o->cn : NULL;
    if (!cn && k == KIND_CA) {
        cn = "Starling cluster CA";
    } else if (!cn) {
        /* Unsigned certificates cannot be exported yet; GnuTLS's SHA-256 key
         * id is the same hash over the SPKI it just encoded from our key. */
        uint8_t spki[32];
        size_t spki_len = sizeof spki;
        TRY("cannot compute key id",
            gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, spki, &spki_len));
        snprintf(cn_buf, sizeof cn_buf, "starling %s %016llx", k == KIND_NODE ? "node" : "dev",
                 (unsigned long long)sl__tls_node_id_of_spki(spki));
        cn = cn_buf;
    }
    if (!cn[0] || strlen(cn) > 64) {
        seterr(buf, "common name must have 1 to 64 characters");
        rc = SL_ERR_INVAL;
        goto fail;
    }
    TRY("cannot set subject", gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
                                                            (unsigned)strlen(cn)));

    /* Extensions. */
    uint8_t id[64];
    size_t id_len = sizeof id;
    TRY("cannot compute key id",
        gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, id, &id_len));
    TRY("cannot set subjectKeyIdentifier", gnutls_x509_crt_set_subject_key_id(crt, id, id_len));
    if (k == KIND_CA) {
        TRY("cannot set basicConstraints", gnutls_x509_crt_set_basic_constraints(crt, 1, 0));
        TRY("cannot set keyUsage",
            gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN |
                                                   GNUTLS_KEY_DIGITAL_SIGNATURE));
    } else {
        TRY("cannot set basicConstraints", gnutls_x509_crt_set_basic_constraints(crt, 0, -1));
        TRY("cannot set keyUsage",
            gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE));
        TRY("cannot set extendedKeyUsage",
            gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0));
        TRY("cannot set extendedKeyUsage",
            gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0));
        if ((rc = add_sans(crt, o, buf)) != SL_OK)
            goto fail;
    }
    if (issuer) {
        id_len = sizeof id;
        r = gnutls_x509_crt_get_subject_key_id(issuer, id, &id_len, NULL);
        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) /* an old CA without SKI */
            TRY("cannot compute CA key id",
                gnutls_x509_crt_get_key_id(issuer, GNUTLS_KEYID_USE_SHA1, id, &id_len));
        else if (r < 0)
            TRY("cannot read CA key id", r);
        TRY("cannot set authorityKeyIdentifier",
            gnutls_x509_crt_set_authority_key_id(crt, id, id_len));
    }
    TRY("cannot sign certificate",
        gnutls_x509_crt_sign2(crt, issuer ? issuer : crt, issuer ? issuer_key : key,
                              GNUTLS_DIG_SHA256, 0));
#undef TRY
    *crt_out = crt;
    *key_out = key;
    return SL_OK;

fail_tls:
    rc = tls_fail(buf, r, step);
fail:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

/* ----------------------------------------------------------- verification */

/* The credentials behind a session, or NULL if they are not ours. */
static sl__tls_creds *creds_of(gnutls_session_t s)
{
    void *cred = NULL;
    gnutls_x509_trust_list_t tl = NULL;
    if (gnutls_credentials_get(s, GNUTLS_CRD_CERTIFICATE, &cred) < 0 || !cred)
        return NULL;
    gnutls_certificate_get_trust_list(cred, &tl);
    sl__tls_creds *c = tl ? gnutls_x509_trust_list_get_ptr(tl) : NULL;
    return c && c->magic == CREDS_MAGIC ? c : NULL;
}

/* Time check for the pinned modes. */
static int check_dates(sl__tls_creds *c, const gnutls_datum_t *der)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0) {
        seterr(c->err, "peer certificate rejected: out of memory");
        return -1;
    }
    int r = gnutls_x509_crt_import(crt, der, GNUTLS_X509_FMT_DER);
    if (r < 0) {
        gnutls_x509_crt_deinit(crt);
        tls_fail(c->err, r, "peer certificate rejected: cannot parse it");
        return -1;
    }
    time_t now = time(NULL), nb = gnutls_x509_crt_get_activation_time(crt),
           na = gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    char t[32];
    if (nb == (time_t)-1 || na == (time_t)-1) {
        seterr(c->err, "peer certificate rejected: unreadable validity dates");
        return -1;
    }
    if (now < nb) {
        fmt_time(nb, t);
        seterr(c->err, "peer certificate rejected: not valid before %s", t);
        return -1;
    }
    if (now > na) {
        fmt_time(na, t);
        seterr(c->err, "peer certificate rejected: expired at %s", t);
        return -1;
    }
    return 0;
}

/*
 * Verify the peer's certificate. `client`: we are the client. Returns 0 to
 * accept, -1 to fail the handshake (GNUTLS_E_CERTIFICATE_ERROR) with the
 * reason in c->err.
 */
static int verify_peer(gnutls_session_t s, bool client)
{
    sl__tls_creds *c = creds_of(s);
    if (!c)
        return -1;
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (!peers || n == 0) {
        if (!client) /* the server's request level (REQUIRE) already decided */
            return 0;
        seterr(c->err, "peer certificate rejected: the server sent none");
        return -1;
    }
    if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509) {
        seterr(c->err, "peer certificate rejected: not X.509");
        return -1;
    }

    switch (c->verify) {
    case SL_VERIFY_NONE_INSECURE_DEV_ONLY:
        return 0;
    case SL_VERIFY_CA: {
        gnutls_typed_vdata_st data[2];
        unsigned nd = 0;
        data[nd].type = GNUTLS_DT_KEY_PURPOSE_OID;
        data[nd].data =
            (unsigned char *)(client ? GNUTLS_KP_TLS_WWW_SERVER : GNUTLS_KP_TLS_WWW_CLIENT);
        data[nd++].size = 0;
        if (client && c->server_name) {
            data[nd].type = GNUTLS_DT_DNS_HOSTNAME; /* an IP literal matches IP SANs */
            data[nd].data = (unsigned char *)c->server_name;
            data[nd++].size = 0;
        }
        unsigned status = 0;
        int r = gnutls_certificate_verify_peers(s, data, nd, &status);
        if (r < 0) {
            tls_fail(c->err, r, "peer certificate rejected");
            return -1;
        }
        if (status != 0) {
            gnutls_datum_t out = {NULL, 0};
            if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) >=
                0) {
                seterr(c->err, "peer certificate rejected: %s", (const char *)out.data);
                gnutls_free(out.data);
                for (size_t k = strlen(c->err); k > 0 && c->err[k - 1] == ' '; k--)
                    c->err[k - 1] = '\0'; /* GnuTLS ends its sentences with a space */
            } else {
                seterr(c->err, "peer certificate rejected: status 0x%x", status);
            }
            return -1;
        }
        return 0;
    }
    case SL_VERIFY_PIN_CERT:
    case SL_VERIFY_PIN_SPKI: {
        uint8_t cert_sha[32], spki_sha[32];
        if (der_hashes(&peers[0], cert_sha, spki_sha) != SL_OK) {
            seterr(c->err, "peer certificate rejected: malformed certificate");
            return -1;
        }
        bool spki = c->verify == SL_VERIFY_PIN_SPKI;
        if (!hash_eq(spki ? spki_sha : cert_sha, c->pin)) {
            char got[65];
            sl__tls_hex(spki ? spki_sha : cert_sha, 32, got);
            seterr(c->err, "peer certificate rejected: its %s SHA-256 %s is not the pinned one",
                   spki ? "public key (SPKI)" : "certificate", got);
            return -1;
        }
        return check_dates(c, &peers[0]);
    }
    default:
        seterr(c->err, "peer certificate rejected: unknown verify mode %u", c->verify);
        return -1;
    }
}

static int verify_as_client(gnutls_session_t s)
{
    return verify_peer(s, true);
}

static int verify_as_server(gnutls_session_t s)
{
    return verify_peer(s, false);
}

/* Installed on the credentials: a session not prepared by sl__tls_session_setup fails closed. */
static int verify_unprepared(gnutls_session_t s)
{
    sl__tls_creds *c = creds_of(s);
    if (c)
        seterr(c->err, "peer certificate rejected: session was not set up with "
                       "sl__tls_session_setup");
    return -1;
}

/* ------------------------------------------------------------ credentials */

/* Load cert_file + key_file into c->cred and hash the leaf. */
static int load_own(sl__tls_creds *c, const char *cert_file, const char *key_file)
{
    gnutls_datum_t cert = {NULL, 0}, key = {NULL, 0};
    gnutls_x509_crt_t *list = NULL;
    unsigned n = 0;
    int rc, r;

    if ((rc = read_file(&c->mem, cert_file, "cert_file", &cert, c->err)) != SL_OK)
        goto out;
    if ((rc = read_file(&c->mem, key_file, "key_file", &key, c->err)) != SL_OK)
        goto out;
    r = gnutls_x509_crt_list_import2(&list, &n, &cert, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0 || n == 0) {
        char what[ERR_MAX];
        snprintf(what, sizeof what, "cert_file %s: no PEM certificate in it", cert_file);
        rc = r < 0 ? tls_fail(c->err, r, what) : (seterr(c->err, "%s", what), SL_ERR_TLS);
        goto out;
    }
    time_t na = gnutls_x509_crt_get_expiration_time(list[0]);
    if (na != (time_t)-1 && na < time(NULL)) {
        char t[32];
        fmt_time(na, t);
        seterr(c->err, "cert_file %s: the certificate expired at %s", cert_file, t);
        rc = SL_ERR_TLS;
        goto out;
    }
    if ((rc = crt_hashes(list[0], c->cert_sha256, c->spki_sha256, c->err)) != SL_OK)
        goto out;
    r = gnutls_certificate_set_x509_key_mem2(c->cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        char what[ERR_MAX];
        if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
            snprintf(what, sizeof what, "key_file %s does not match cert_file %s", key_file,
                     cert_file);
        else
            snprintf(what, sizeof what, "key_file %s: no usable PEM private key for cert_file %s",
                     key_file, cert_file);
        rc = tls_fail(c->err, r, what);
        goto out;
    }
    rc = SL_OK;
out:
    for (unsigned i = 0; i < n; i++)
        gnutls_x509_crt_deinit(list[i]);
    gnutls_free(list);
    free_datum(&c->mem, &cert, false);
    free_datum(&c->mem, &key, true);
    return rc;
}

/* Generate the in-memory development certificate into c->cred. */
static int make_own(sl__tls_creds *c)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    int rc = make_cert(KIND_DEV, NULL, NULL, NULL, &crt, &key, c->err);
    if (rc != SL_OK)
        return rc;
    if ((rc = crt_hashes(crt, c->cert_sha256, c->spki_sha256, c->err)) == SL_OK) {
        int r = gnutls_certificate_set_x509_key(c->cred, &crt, 1, key);
        if (r < 0)
            rc = tls_fail(c->err, r, "cannot use the development certificate");
    }
    if (rc == SL_OK) {
        char hex[65], t[32];
        sl__tls_hex(c->cert_sha256, 32, hex);
        fmt_time(gnutls_x509_crt_get_expiration_time(crt), t);
        fprintf(stderr,
                "starling: generated a development certificate (ECDSA P-256, self-signed, "
                "valid until %s), sha256 %s\n",
                t, hex);
    }
    gnutls_x509_crt_deinit(crt);
    gnutls_x509_privkey_deinit(key);
    c->generated = true;
    return rc;
}

/* Checks for a side that verifies; empty string when fine. */
static int check_verifier(const sl__tls_creds *c, char *buf, const char *who)
{
    if (c->verify == SL_VERIFY_CA && !c->has_ca) {
        seterr(buf, "%s: verify mode SL_VERIFY_CA needs tls.ca_file (the cluster CA)", who);
        return SL_ERR_INVAL;
    }
    if ((c->verify == SL_VERIFY_PIN_CERT || c->verify == SL_VERIFY_PIN_SPKI) && all_zero(c->pin)) {
        seterr(buf, "%s: a PIN verify mode needs tls.pin (the SHA-256 to expect)", who);
        return SL_ERR_INVAL;
    }
    return SL_OK;
}

int sl__tls_creds_new(const sl_tls_settings *s, const sl_mem *mem, sl__tls_creds **out)
{
    char early[ERR_MAX];
    sl_mem m;
    int rc, r;

    if (!s || !out) {
        print_err("tls: invalid argument");
        return SL_ERR_INVAL;
    }
    if (s->verify > SL_VERIFY_NONE_INSECURE_DEV_ONLY) {
        seterr(early, "tls: unknown verify mode %u", s->verify);
        print_err(early);
        return SL_ERR_INVAL;
    }
    if (!s->cert_file != !s->key_file) {
        seterr(early, "tls: cert_file and key_file go together (got only %s)",
               s->cert_file ? "cert_file" : "key_file");
        print_err(early);
        return SL_ERR_INVAL;
    }
    resolve_mem(mem, &m);
    sl__tls_creds *c = m.calloc(1, sizeof *c, m.ud);
    if (!c) {
        print_err("tls: out of memory");
        return SL_ERR_NOMEM;
    }
    c->magic = CREDS_MAGIC;
    c->mem = m;
    c->verify = s->verify;
    memcpy(c->pin, s->pin, sizeof c->pin);
    c->require_client_cert = s->require_client_cert;
    if (s->server_name) {
        if (!s->server_name[0]) {
            seterr(c->err, "tls: server_name is empty (use NULL for none)");
            rc = SL_ERR_INVAL;
            goto fail;
        }
        if (!(c->server_name = mem_strdup(&m, s->server_name))) {
            seterr(c->err, "tls: out of memory");
            rc = SL_ERR_NOMEM;
            goto fail;
        }
        c->server_name_is_ip = is_ip_literal(s->server_name);
    }

    if ((r = gnutls_certificate_allocate_credentials(&c->cred)) < 0) {
        rc = tls_fail(c->err, r, "tls: cannot allocate credentials");
        goto fail;
    }
    gnutls_x509_trust_list_t tl = NULL;
    gnutls_certificate_get_trust_list(c->cred, &tl);
    if (!tl) {
        seterr(c->err, "tls: credentials have no trust list");
        rc = SL_ERR_TLS;
        goto fail;
    }
    gnutls_x509_trust_list_set_ptr(tl, c); /* how verify_peer finds us: see the top */
    gnutls_certificate_set_verify_function(c->cred, verify_unprepared);

    if (s->ca_file) {
        gnutls_datum_t ca = {NULL, 0};
        if ((rc = read_file(&m, s->ca_file, "ca_file", &ca, c->err)) != SL_OK)
            goto fail;
        r = gnutls_certificate_set_x509_trust_mem(c->cred, &ca, GNUTLS_X509_FMT_PEM);
        free_datum(&m, &ca, false);
        if (r <= 0) {
            char what[ERR_MAX];
            snprintf(what, sizeof what, "ca_file %s: no usable PEM CA certificate in it",
                     s->ca_file);
            rc = r < 0 ? tls_fail(c->err, r, what) : (seterr(c->err, "%s", what), SL_ERR_TLS);
            goto fail;
        }
        c->has_ca = true;
    }
    if (s->require_client_cert && (rc = check_verifier(c, c->err, "tls server")) != SL_OK)
        goto fail;

    rc = s->cert_file ? load_own(c, s->cert_file, s->key_file) : make_own(c);
    if (rc != SL_OK)
        goto fail;

    const char *pos = NULL;
    if ((r = gnutls_priority_init(&c->prio, SL__TLS_PRIORITY, &pos)) < 0) {
        rc = tls_fail(c->err, r, "tls: priority string rejected");
        goto fail;
    }
    if (c->verify == SL_VERIFY_NONE_INSECURE_DEV_ONLY)
        fprintf(stderr, "starling: WARNING: TLS PEER VERIFICATION IS OFF "
                        "(SL_VERIFY_NONE_INSECURE_DEV_ONLY): any peer can impersonate any "
                        "other and a man in the middle can read and change all traffic. "
                        "Development only.\n");
    c->err[0] = '\0';
    *out = c;
    return SL_OK;

fail:
    print_err(c->err);
    sl__tls_creds_del(c);
    return rc;
}

void sl__tls_creds_del(sl__tls_creds *c)
{
    if (!c)
        return;
    if (c->prio)
        gnutls_priority_deinit(c->prio);
    if (c->cred)
        gnutls_certificate_free_credentials(c->cred);
    if (c->server_name)
        c->mem.free(c->server_name, c->mem.ud);
    c->magic = 0;
    sl_mem m = c->mem;
    gnutls_memset(c, 0, sizeof *c);
    m.free(c, m.ud);
}

int sl__tls_session_setup(const sl__tls_creds *cc, gnutls_session_t s, bool server)
{
    if (!cc || !s)
        return SL_ERR_INVAL;
    sl__tls_creds *c = (sl__tls_creds *)cc; /* only err is written */
    int rc, r;
    c->err[0] = '\0';
    if (!server && (rc = check_verifier(c, c->err, "tls client")) != SL_OK)
        return rc;
    if ((r = gnutls_priority_set(s, c->prio)) < 0)
        return tls_fail(c->err, r, "tls: cannot set priority");
    if ((r = gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, c->cred)) < 0)
        return tls_fail(c->err, r, "tls: cannot set credentials");
    gnutls_session_set_verify_function(s, server ? verify_as_server : verify_as_client);
    if (server) {
        gnutls_certificate_server_set_request(s, c->require_client_cert ? GNUTLS_CERT_REQUIRE
                                                                        : GNUTLS_CERT_IGNORE);
        /* No CA name list: a client with the wrong CA then still sends its
         * certificate and gets a clear "issuer unknown" instead of "none". */
        gnutls_certificate_send_x509_rdn_sequence(s, 1);
    } else if (c->server_name && !c->server_name_is_ip) {
        r = gnutls_server_name_set(s, GNUTLS_NAME_DNS, c->server_name, strlen(c->server_name));
        if (r < 0)
            return tls_fail(c->err, r, "tls: cannot set server name");
    }
    return SL_OK;
}

const char *sl__tls_last_error(const sl__tls_creds *c)
{
    return c ? c->err : "invalid argument";
}

int sl__tls_cert_sha256(const sl__tls_creds *c, uint8_t out[32])
{
    if (!c || !out)
        return SL_ERR_INVAL;
    memcpy(out, c->cert_sha256, 32);
    return SL_OK;
}

int sl__tls_spki_sha256(const sl__tls_creds *c, uint8_t out[32])
{
    if (!c || !out)
        return SL_ERR_INVAL;
    memcpy(out, c->spki_sha256, 32);
    return SL_OK;
}

int sl__tls_own_node_id(const sl__tls_creds *c, uint64_t *out)
{
    if (!c || !out)
        return SL_ERR_INVAL;
    *out = sl__tls_node_id_of_spki(c->spki_sha256);
    return SL_OK;
}

bool sl__tls_creds_generated(const sl__tls_creds *c)
{
    return c && c->generated;
}

/* Hashes of the peer's leaf. */
static int peer_hashes(gnutls_session_t s, uint8_t cert_sha[32], uint8_t spki_sha[32])
{
    if (!s)
        return SL_ERR_INVAL;
    if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
        return SL_ERR_NOTFOUND;
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(s, &n);
    if (!peers || n == 0)
        return SL_ERR_NOTFOUND;
    return der_hashes(&peers[0], cert_sha, spki_sha);
}

int sl__tls_peer_node_id(gnutls_session_t s, uint64_t *out)
{
    uint8_t spki[32];
    if (!out)
        return SL_ERR_INVAL;
    int rc = peer_hashes(s, NULL, spki);
    if (rc == SL_OK)
        *out = sl__tls_node_id_of_spki(spki);
    return rc;
}

int sl__tls_peer_cert_sha256(gnutls_session_t s, uint8_t out[32])
{
    if (!out)
        return SL_ERR_INVAL;
    return peer_hashes(s, out, NULL);
}

/* ------------------------------------------------------------------ files */

/*
 * Write d to path with `mode`. Without overwrite the file must not exist
 * (O_EXCL); with it, an existing file is truncated and re-moded (so a key
 * is 0600 even if the old file was not). On failure nothing is left behind
 * that this call created.
 */
static int write_file(const char *path, const gnutls_datum_t *d, mode_t mode, bool overwrite,
                      char *buf)
{
    int fd = open(
        path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (overwrite ? O_TRUNC : O_EXCL), mode);
    if (fd < 0) {
        int e = errno;
        seterr(buf, "%s: cannot create: %s", path, strerror(e));
        return e == EEXIST ? SL_ERR_EXISTS : SL_ERR_IO;
    }
    if (overwrite && fchmod(fd, mode) != 0) {
        seterr(buf, "%s: cannot set mode %o: %s", path, (unsigned)mode, strerror(errno));
        close(fd);
        return SL_ERR_IO;
    }
    size_t off = 0;
    while (off < d->size) {
        ssize_t w = write(fd, d->data + off, d->size - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            seterr(buf, "%s: cannot write: %s", path, w < 0 ? strerror(errno) : "short write");
            close(fd);
            unlink(path);
            return SL_ERR_IO;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0) {
        seterr(buf, "%s: cannot write: %s", path, strerror(errno));
        unlink(path);
        return SL_ERR_IO;
    }
    return SL_OK;
}

/* Both outputs must be writable names that do not exist (unless overwrite). */
static int check_outputs(const char *cert_path, const char *key_path, bool overwrite, char *buf)
{
    if (!cert_path || !key_path || !cert_path[0] || !key_path[0]) {
        seterr(buf, "output paths for the certificate and the key are required");
        return SL_ERR_INVAL;
    }
    if (strcmp(cert_path, key_path) == 0) {
        seterr(buf, "%s: certificate and key must go to different files", cert_path);
        return SL_ERR_INVAL;
    }
    const char *paths[2] = {key_path, cert_path};
    for (int i = 0; i < 2 && !overwrite; i++) {
        struct stat st;
        if (lstat(paths[i], &st) == 0) {
            seterr(buf, "%s: already exists (refusing to overwrite it)", paths[i]);
            return SL_ERR_EXISTS;
        }
    }
    return SL_OK;
}

/* Export crt + key as PEM and write them (key 0600, cert 0644). */
static int write_pair(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cert_path,
                      const char *key_path, bool overwrite, char *buf)
{
    gnutls_datum_t cpem = {NULL, 0}, kpem = {NULL, 0};
    int rc, r;
    if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &cpem)) < 0) {
        rc = tls_fail(buf, r, "cannot encode certificate");
        goto out;
    }
    r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &kpem);
    if (r < 0) {
        rc = tls_fail(buf, r, "cannot encode private key");
        goto out;
    }
    if ((rc = write_file(key_path, &kpem, 0600, overwrite, buf)) != SL_OK)
        goto out;
    if ((rc = write_file(cert_path, &cpem, 0644, overwrite, buf)) != SL_OK)
        unlink(key_path); /* no key without its certificate */
out:
    if (kpem.data) {
        gnutls_memset(kpem.data, 0, kpem.size);
        gnutls_free(kpem.data);
    }
    gnutls_free(cpem.data);
    return rc;
}

/* Make a self-signed certificate of `k` and write it. */
static int make_self_signed(enum kind k, const char *cert_path, const char *key_path,
                            const sl__tls_cert_opts *o)
{
    errbuf e = {{0}};
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    bool ow = o && o->overwrite;
    int rc = check_outputs(cert_path, key_path, ow, e.msg);
    if (rc == SL_OK)
        rc = make_cert(k, o, NULL, NULL, &crt, &key, e.msg);
    if (rc == SL_OK)
        rc = write_pair(crt, key, cert_path, key_path, ow, e.msg);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (rc != SL_OK)
        print_err(e.msg);
    return rc;
}

int sl__tls_make_ca(const char *cert_path, const char *key_path, const sl__tls_cert_opts *o)
{
    return make_self_signed(KIND_CA, cert_path, key_path, o);
}

int sl__tls_make_dev_cert(const char *cert_path, const char *key_path, const sl__tls_cert_opts *o)
{
    return make_self_signed(KIND_DEV, cert_path, key_path, o);
}

/* Load the issuing CA: certificate (first in file) and key, checked for use. */
static int load_ca(const char *ca_cert, const char *ca_key, gnutls_x509_crt_t *crt_out,
                   gnutls_x509_privkey_t *key_out, char *buf)
{
    const sl_mem *m = sl_mem_default();
    gnutls_datum_t cd = {NULL, 0}, kd = {NULL, 0};
    gnutls_x509_crt_t crt = NULL;
    gnutls_x509_privkey_t key = NULL;
    char what[ERR_MAX];
    int rc, r;

    if (!ca_cert || !ca_key) {
        seterr(buf, "the CA certificate and key files are required");
        return SL_ERR_INVAL;
    }
    if ((rc = read_file(m, ca_cert, "CA certificate", &cd, buf)) != SL_OK)
        goto fail;
    if ((rc = read_file(m, ca_key, "CA key", &kd, buf)) != SL_OK)
        goto fail;
    if ((r = gnutls_x509_crt_init(&crt)) < 0 || (r = gnutls_x509_privkey_init(&key)) < 0) {
        rc = tls_fail(buf, r, "cannot load the CA");
        goto fail;
    }
    if ((r = gnutls_x509_crt_import(crt, &cd, GNUTLS_X509_FMT_PEM)) < 0) {
        snprintf(what, sizeof what, "CA certificate %s: not a PEM certificate", ca_cert);
        rc = tls_fail(buf, r, what);
        goto fail;
    }
    if ((r = gnutls_x509_privkey_import2(key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(what, sizeof what, "CA key %s: not a usable PEM private key", ca_key);
        rc = tls_fail(buf, r, what);
        goto fail;
    }
    unsigned ca = 0;
    r = gnutls_x509_crt_get_basic_constraints(crt, NULL, &ca, NULL);
    if (r < 0 || !ca) {
        seterr(buf, "CA certificate %s: not a CA certificate (basicConstraints CA:TRUE missing)",
               ca_cert);
        rc = SL_ERR_TLS;
        goto fail;
    }
    time_t na = gnutls_x509_crt_get_expiration_time(crt);
    if (na != (time_t)-1 && na <= time(NULL)) {
        char t[32];
        fmt_time(na, t);
        seterr(buf, "CA certificate %s: expired at %s", ca_cert, t);
        rc = SL_ERR_TLS;
        goto fail;
    }
    uint8_t a[64], b[64];
    size_t al = sizeof a, bl = sizeof b;
    if ((r = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, a, &al)) < 0 ||
        (r = gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, b, &bl)) < 0) {
        rc = tls_fail(buf, r, "cannot compare the CA key and certificate");
        goto fail;
    }
    if (al != bl || memcmp(a, b, al) != 0) {
        seterr(buf, "CA key %s does not match CA certificate %s", ca_key, ca_cert);
        rc = SL_ERR_TLS;
        goto fail;
    }
    free_datum(m, &cd, false);
    free_datum(m, &kd, true);
    *crt_out = crt;
    *key_out = key;
    return SL_OK;
fail:
    free_datum(m, &cd, false);
    free_datum(m, &kd, true);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    return rc;
}

int sl__tls_issue_node_cert(const char *ca_cert, const char *ca_key, const char *cert_path,
                            const char *key_path, const sl__tls_cert_opts *o)
{
    errbuf e = {{0}};
    gnutls_x509_crt_t ca = NULL, crt = NULL;
    gnutls_x509_privkey_t cakey = NULL, key = NULL;
    bool ow = o && o->overwrite;
    int rc = check_outputs(cert_path, key_path, ow, e.msg);
    if (rc == SL_OK)
        rc = load_ca(ca_cert, ca_key, &ca, &cakey, e.msg);
    if (rc == SL_OK)
        rc = make_cert(KIND_NODE, o, ca, cakey, &crt, &key, e.msg);
    if (rc == SL_OK)
        rc = write_pair(crt, key, cert_path, key_path, ow, e.msg);
    if (crt)
        gnutls_x509_crt_deinit(crt);
    if (key)
        gnutls_x509_privkey_deinit(key);
    if (ca)
        gnutls_x509_crt_deinit(ca);
    if (cakey)
        gnutls_x509_privkey_deinit(cakey);
    if (rc != SL_OK)
        print_err(e.msg);
    return rc;
}

int sl__tls_fingerprint(const char *cert_path, uint8_t cert_sha256[32], uint8_t spki_sha256[32],
                        uint64_t *node_id)
{
    const sl_mem *m = sl_mem_default();
    errbuf e = {{0}};
    gnutls_datum_t d = {NULL, 0};
    gnutls_x509_crt_t crt = NULL;
    uint8_t spki[32];
    int rc, r;

    if (!cert_path) {
        print_err("no certificate file given");
        return SL_ERR_INVAL;
    }
    if ((rc = read_file(m, cert_path, "certificate", &d, e.msg)) != SL_OK)
        goto out;
    if ((r = gnutls_x509_crt_init(&crt)) < 0) {
        rc = tls_fail(e.msg, r, "cannot parse certificate");
        goto out;
    }
    /* PEM (first certificate of the file), else DER. */
    r = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM);
    if (r < 0 && gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) >= 0)
        r = 0;
    if (r < 0) {
        char what[ERR_MAX];
        snprintf(what, sizeof what, "certificate %s: not a PEM or DER certificate", cert_path);
        rc = tls_fail(e.msg, r, what);
        goto out;
    }
    if ((rc = crt_hashes(crt, cert_sha256, spki, e.msg)) != SL_OK)
        goto out;
    if (spki_sha256)
        memcpy(spki_sha256, spki, 32);
    if (node_id)
        *node_id = sl__tls_node_id_of_spki(spki);
out:
    if (crt)
        gnutls_x509_crt_deinit(crt);
    free_datum(m, &d, false);
    if (rc != SL_OK)
        print_err(e.msg);
    return rc;
}

/*
 * A secret bound to our private key: HMAC-SHA256 keyed by the key's DER
 * (PKCS#8) over `label`. The same key gives the same secret after a
 * restart, which is what stateless reset tokens need (a peer of a restarted
 * node learns at once that its connection is gone); a different key or
 * label gives an unrelated one. Nothing of the key leaves this function.
 */
int sl__tls_key_secret(const sl__tls_creds *c, const char *label, uint8_t out[32])
{
    if (!c || !label || !out)
        return SL_ERR_INVAL;
    gnutls_x509_privkey_t key = NULL;
    if (gnutls_certificate_get_x509_key(c->cred, 0, &key) < 0)
        return SL_ERR_TLS;
    gnutls_datum_t der = {NULL, 0};
    int rv = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL, GNUTLS_PKCS_PLAIN,
                                               &der);
    gnutls_x509_privkey_deinit(key);
    if (rv < 0)
        return SL_ERR_TLS;
    rv = gnutls_hmac_fast(GNUTLS_MAC_SHA256, der.data, der.size, label, strlen(label), out);
    gnutls_memset(der.data, 0, der.size);
    gnutls_free(der.data);
    return rv < 0 ? SL_ERR_TLS : SL_OK;
}
