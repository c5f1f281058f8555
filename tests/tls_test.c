/*
 * tls_test.c: the TLS/identity module (transport/tls.c) without QUIC.
 *
 * The group setup makes, in a fresh mkdtemp directory, a cluster CA with two
 * node certificates, a second CA with one node certificate, an expired node
 * certificate, a development certificate and a garbage file; teardown
 * removes them. The tests check the certificates with GnuTLS's own x509
 * API, and then run real TLS 1.3 handshakes between a GnuTLS client session
 * and a GnuTLS server session over a non-blocking socketpair, each prepared
 * with sl__tls_session_setup(). Plain TLS exercises exactly the verify
 * function the QUIC handshake uses (ngtcp2 only replaces the record layer),
 * so CA, pin, none, mutual TLS, expiry and the node id exposed on the
 * session are all proven here. A counting allocator proves the credentials
 * object frees what it allocates, also when an allocation fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "starling/common.h"
#include "transport/tls.h"

/* ------------------------------------------------------------ fixtures */

static char dir[64];

static const char *const files[] = {
    "ca.pem", "ca.key", "ca2.pem", "ca2.key", "n1.pem", "n1.key", "n2.pem",  "n2.key",
    "n3.pem", "n3.key", "nx.pem",  "nx.key",  "d.pem",  "d.key",  "bad.pem", "empty.pem",
    "t1.pem", "t1.key", "t2.pem",  "t2.key",  "t3.pem", "t3.key", "t4.pem",  "t4.key",
};

/* Path of a fixture file (a rotating set of buffers, enough for one call). */
static const char *P(const char *name)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 128, "%s/%s", dir, name);
    return b;
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(P(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/sl_tls_test.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    sl__tls_cert_opts past = {0};
    past.not_before = (int64_t)time(NULL) - 10 * 86400;
    past.not_after = (int64_t)time(NULL) - 86400;
    if (sl__tls_make_ca(P("ca.pem"), P("ca.key"), NULL) ||
        sl__tls_make_ca(P("ca2.pem"), P("ca2.key"), &(sl__tls_cert_opts){.cn = "Other CA"}) ||
        sl__tls_issue_node_cert(P("ca.pem"), P("ca.key"), P("n1.pem"), P("n1.key"), NULL) ||
        sl__tls_issue_node_cert(P("ca.pem"), P("ca.key"), P("n2.pem"), P("n2.key"), NULL) ||
        sl__tls_issue_node_cert(P("ca2.pem"), P("ca2.key"), P("n3.pem"), P("n3.key"), NULL) ||
        sl__tls_issue_node_cert(P("ca.pem"), P("ca.key"), P("nx.pem"), P("nx.key"), &past) ||
        sl__tls_make_dev_cert(P("d.pem"), P("d.key"), NULL))
        return -1;
    write_text("bad.pem", "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n"
                          "-----END CERTIFICATE-----\n");
    write_text("empty.pem", "");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(P(files[i]));
    return rmdir(dir) == 0 ? 0 : -1;
}

/* ------------------------------------------------------ counting allocator */

typedef struct counting {
    long live;    /* blocks allocated and not freed */
    long calls;   /* allocation attempts */
    long fail_at; /* 0 = never; else the attempt number that fails */
} counting;

static void *c_malloc(size_t n, void *ud)
{
    counting *m = ud;
    if (++m->calls == m->fail_at)
        return NULL;
    void *p = malloc(n);
    if (p)
        m->live++;
    return p;
}

static void *c_calloc(size_t n, size_t s, void *ud)
{
    counting *m = ud;
    if (++m->calls == m->fail_at)
        return NULL;
    void *p = calloc(n, s);
    if (p)
        m->live++;
    return p;
}

static void c_free(void *p, void *ud)
{
    counting *m = ud;
    if (p)
        m->live--;
    free(p);
}

static sl_mem counting_mem(counting *m)
{
    sl_mem mem = {c_malloc, c_free, c_calloc, NULL, m};
    return mem;
}

/* ------------------------------------------------------------- helpers */

static sl_tls_settings settings(const char *cert, const char *key, const char *ca, int verify)
{
    sl_tls_settings s;
    memset(&s, 0, sizeof s);
    s.cert_file = cert ? P(cert) : NULL;
    s.key_file = key ? P(key) : NULL;
    s.ca_file = ca ? P(ca) : NULL;
    s.verify = (uint8_t)verify;
    return s;
}

static sl__tls_creds *creds(const sl_tls_settings *s)
{
    sl__tls_creds *c = NULL;
    assert_int_equal(sl__tls_creds_new(s, NULL, &c), SL_OK);
    assert_non_null(c);
    return c;
}

static gnutls_x509_crt_t load_crt(const char *name)
{
    gnutls_datum_t d;
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_load_file(P(name), &d), 0);
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), 0);
    gnutls_free(d.data);
    return crt;
}

static void assert_hash_eq(const uint8_t *a, const uint8_t *b)
{
    assert_memory_equal(a, b, 32);
}

/* Verify `leaf` against the CA in `ca` with a trust list; returns the status. */
static unsigned verify_with(const char *leaf, const char *ca)
{
    gnutls_x509_trust_list_t tl;
    gnutls_x509_crt_t l = load_crt(leaf), a = load_crt(ca);
    unsigned status = 0xffffffffu;
    assert_int_equal(gnutls_x509_trust_list_init(&tl, 0), 0);
    assert_int_equal(gnutls_x509_trust_list_add_cas(tl, &a, 1, 0), 1); /* tl owns a now */
    assert_int_equal(gnutls_x509_trust_list_verify_crt(tl, &l, 1, 0, &status, NULL), 0);
    gnutls_x509_trust_list_deinit(tl, 1);
    gnutls_x509_crt_deinit(l);
    return status;
}

/* Checks every leaf we generate must pass (dev and node). */
static void assert_leaf_shape(gnutls_x509_crt_t crt, unsigned max_validity)
{
    assert_int_equal(gnutls_x509_crt_get_version(crt), 3);
    assert_int_equal(gnutls_x509_crt_get_pk_algorithm(crt, NULL), GNUTLS_PK_ECDSA);
    gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
    gnutls_datum_t x = {NULL, 0}, y = {NULL, 0};
    assert_int_equal(gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, &y), 0);
    assert_int_equal(curve, GNUTLS_ECC_CURVE_SECP256R1);
    gnutls_free(x.data);
    gnutls_free(y.data);
    time_t nb = gnutls_x509_crt_get_activation_time(crt);
    time_t na = gnutls_x509_crt_get_expiration_time(crt), now = time(NULL);
    assert_true(nb < now && now < na);
    assert_true(na - nb <= (time_t)max_validity);
    unsigned ca = 1, crit = 0;
    assert_int_equal(gnutls_x509_crt_get_basic_constraints(crt, &crit, &ca, NULL),
                     0); /* = CA flag */
    assert_int_equal(crit, 1);
    assert_int_equal(ca, 0);
    unsigned usage = 0;
    assert_true(gnutls_x509_crt_get_key_usage(crt, &usage, &crit) >= 0);
    assert_true(usage & GNUTLS_KEY_DIGITAL_SIGNATURE);
    assert_int_equal(gnutls_x509_crt_check_hostname(crt, "localhost"), 1);
    assert_int_equal(gnutls_x509_crt_check_ip(crt, (const unsigned char *)"\x7f\0\0\1", 4, 0), 1);
    assert_int_equal(gnutls_x509_crt_check_key_purpose(crt, GNUTLS_KP_TLS_WWW_SERVER, 0), 1);
    assert_int_equal(gnutls_x509_crt_check_key_purpose(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0), 1);
}

/* ------------------------------------------------- in-memory handshakes */

/* A client and a server session joined by a non-blocking socketpair. */
typedef struct pair {
    int fd[2]; /* [0] client, [1] server */
    gnutls_session_t cs, ss;
    int crc, src;                         /* handshake results (0 = done) */
    gnutls_certificate_credentials_t raw; /* credentials made by a test, not by tls.c */
} pair;

static void pair_init(pair *p)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, p->fd), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fcntl(p->fd[i], F_SETFL, O_NONBLOCK), 0);
    assert_int_equal(gnutls_init(&p->cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    assert_int_equal(gnutls_init(&p->ss, GNUTLS_SERVER | GNUTLS_NONBLOCK), 0);
    gnutls_transport_set_int(p->cs, p->fd[0]);
    gnutls_transport_set_int(p->ss, p->fd[1]);
}

/* One step of one side; returns true when that side is finished. */
static bool step(gnutls_session_t s, int fd, int *rc)
{
    int r = gnutls_handshake(s);
    if (r == 0) {
        *rc = 0;
        return true;
    }
    if (!gnutls_error_is_fatal(r))
        return false;
    *rc = r;
    gnutls_alert_send_appropriate(s, r);
    shutdown(fd, SHUT_WR); /* the peer sees the alert or EOF instead of waiting */
    return true;
}

/* Run both handshakes to completion or failure (bounded). */
static void pair_run(pair *p)
{
    bool cdone = false, sdone = false;
    p->crc = p->src = 1;
    for (int i = 0; i < 2000 && !(cdone && sdone); i++) {
        if (!cdone)
            cdone = step(p->cs, p->fd[0], &p->crc);
        if (!sdone)
            sdone = step(p->ss, p->fd[1], &p->src);
    }
    assert_true(cdone && sdone);
    /* TLS 1.3: the client finishes before the server has checked its
     * certificate; let it read the server's verdict. */
    if (p->crc == 0 && p->src != 0) {
        char b[16];
        int r = GNUTLS_E_AGAIN;
        for (int i = 0; i < 200 && r == GNUTLS_E_AGAIN; i++)
            r = (int)gnutls_record_recv(p->cs, b, sizeof b);
        assert_true(r <= 0);
    }
}

static void pair_fini(pair *p)
{
    gnutls_deinit(p->cs);
    gnutls_deinit(p->ss);
    close(p->fd[0]);
    close(p->fd[1]);
    if (p->raw)
        gnutls_certificate_free_credentials(p->raw);
}

/* Handshake between two credentials objects; fills p (caller runs pair_fini). */
static void handshake(pair *p, const sl__tls_creds *client, const sl__tls_creds *server)
{
    pair_init(p);
    assert_int_equal(sl__tls_session_setup(client, p->cs, false), SL_OK);
    assert_int_equal(sl__tls_session_setup(server, p->ss, true), SL_OK);
    pair_run(p);
}

/* Server credentials that tls.c did not make: cert/key files straight into GnuTLS. */
static void raw_server(pair *p, const char *cert, const char *key)
{
    pair_init(p);
    assert_int_equal(gnutls_certificate_allocate_credentials(&p->raw), 0);
    assert_int_equal(
        gnutls_certificate_set_x509_key_file(p->raw, P(cert), P(key), GNUTLS_X509_FMT_PEM), 0);
    assert_int_equal(gnutls_credentials_set(p->ss, GNUTLS_CRD_CERTIFICATE, p->raw), 0);
    assert_int_equal(gnutls_priority_set_direct(p->ss, SL__TLS_PRIORITY, NULL), 0);
}

/* ----------------------------------------------------- certificate files */

static void test_dev_cert_file(void **state)
{
    (void)state;
    gnutls_x509_crt_t crt = load_crt("d.pem");
    assert_leaf_shape(crt, 14 * 86400);
    /* Self-signed, and its SHA-256 is the DER fingerprint GnuTLS computes. */
    assert_int_equal(gnutls_x509_crt_check_issuer(crt, crt), 1);
    uint8_t fp[32], ours[32], spki[32];
    size_t fp_len = sizeof fp;
    assert_int_equal(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fp_len), 0);
    assert_int_equal(fp_len, 32);
    assert_int_equal(sl__tls_fingerprint(P("d.pem"), ours, spki, NULL), SL_OK);
    assert_hash_eq(fp, ours);
    gnutls_x509_crt_deinit(crt);

    /* The key is private to its owner. */
    struct stat st;
    assert_int_equal(stat(P("d.key"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* More than 14 days is refused: browsers would not pin it. */
    sl__tls_cert_opts o = {.days = 15};
    assert_int_equal(sl__tls_make_dev_cert(P("t1.pem"), P("t1.key"), &o), SL_ERR_INVAL);
    assert_int_equal(access(P("t1.key"), F_OK), -1);
    /* Existing files are not overwritten unless asked to. */
    assert_int_equal(sl__tls_make_dev_cert(P("d.pem"), P("t1.key"), NULL), SL_ERR_EXISTS);
    assert_int_equal(access(P("t1.key"), F_OK), -1);
    o.days = 3;
    o.overwrite = true;
    assert_int_equal(sl__tls_make_dev_cert(P("t1.pem"), P("t1.key"), &o), SL_OK);
    assert_int_equal(sl__tls_make_dev_cert(P("t1.pem"), P("t1.key"), &o), SL_OK);
    crt = load_crt("t1.pem");
    assert_leaf_shape(crt, 3 * 86400);
    gnutls_x509_crt_deinit(crt);
    assert_int_equal(sl__tls_make_dev_cert(P("t1.pem"), P("t1.pem"), &o), SL_ERR_INVAL);
}

static void test_ca_and_node_chain(void **state)
{
    (void)state;
    gnutls_x509_crt_t ca = load_crt("ca.pem"), n1 = load_crt("n1.pem");
    unsigned is_ca = 0, crit = 0;
    int pathlen = -1;
    assert_true(gnutls_x509_crt_get_basic_constraints(ca, &crit, &is_ca, &pathlen) > 0);
    assert_int_equal(pathlen, 0);
    assert_int_equal(is_ca, 1);
    assert_int_equal(crit, 1);
    assert_int_equal(gnutls_x509_crt_get_version(ca), 3);
    unsigned usage = 0;
    assert_true(gnutls_x509_crt_get_key_usage(ca, &usage, &crit) >= 0);
    assert_true(usage & GNUTLS_KEY_KEY_CERT_SIGN);
    assert_leaf_shape(n1, 366 * 86400);
    assert_int_equal(gnutls_x509_crt_check_issuer(n1, ca), 1);
    /* A node certificate does not outlive its CA. */
    assert_true(gnutls_x509_crt_get_expiration_time(n1) <= gnutls_x509_crt_get_expiration_time(ca));
    gnutls_x509_crt_deinit(ca);
    gnutls_x509_crt_deinit(n1);

    assert_int_equal(verify_with("n1.pem", "ca.pem"), 0);
    assert_int_equal(verify_with("n2.pem", "ca.pem"), 0);
    assert_int_equal(verify_with("n3.pem", "ca2.pem"), 0);
    /* Wrong CA, expired, and a self-signed dev cert do not verify. */
    assert_true(verify_with("n1.pem", "ca2.pem") & GNUTLS_CERT_SIGNER_NOT_FOUND);
    assert_true(verify_with("n3.pem", "ca.pem") & GNUTLS_CERT_INVALID);
    assert_true(verify_with("nx.pem", "ca.pem") & GNUTLS_CERT_EXPIRED);
    assert_true(verify_with("d.pem", "ca.pem") & GNUTLS_CERT_INVALID);

    /* A node certificate with our own names and a days limit. */
    const char *dns[] = {"node1.example"}, *ip[] = {"10.1.2.3", "fd00::7"};
    sl__tls_cert_opts o = {
        .cn = "node one", .days = 30, .dns = dns, .n_dns = 1, .ip = ip, .n_ip = 2};
    assert_int_equal(
        sl__tls_issue_node_cert(P("ca.pem"), P("ca.key"), P("t2.pem"), P("t2.key"), &o), SL_OK);
    gnutls_x509_crt_t t2 = load_crt("t2.pem");
    assert_int_equal(gnutls_x509_crt_check_hostname(t2, "node1.example"), 1);
    assert_int_equal(gnutls_x509_crt_check_hostname(t2, "localhost"), 0);
    assert_int_equal(gnutls_x509_crt_check_hostname(t2, "10.1.2.3"), 1);
    char cn[64];
    size_t cn_len = sizeof cn;
    assert_int_equal(
        gnutls_x509_crt_get_dn_by_oid(t2, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &cn_len), 0);
    assert_string_equal(cn, "node one");
    assert_true(gnutls_x509_crt_get_expiration_time(t2) - gnutls_x509_crt_get_activation_time(t2) <=
                30 * 86400);
    gnutls_x509_crt_deinit(t2);
    assert_int_equal(verify_with("t2.pem", "ca.pem"), 0);

    /* The CA key must belong to the CA certificate, and the CA must be a CA. */
    assert_int_equal(
        sl__tls_issue_node_cert(P("ca.pem"), P("ca2.key"), P("t3.pem"), P("t3.key"), NULL),
        SL_ERR_TLS);
    assert_int_equal(
        sl__tls_issue_node_cert(P("n1.pem"), P("n1.key"), P("t3.pem"), P("t3.key"), NULL),
        SL_ERR_TLS);
    assert_int_equal(access(P("t3.key"), F_OK), -1);
    const char *bad_ip[] = {"10.1.2"};
    sl__tls_cert_opts ob = {.ip = bad_ip, .n_ip = 1};
    assert_int_equal(
        sl__tls_issue_node_cert(P("ca.pem"), P("ca.key"), P("t3.pem"), P("t3.key"), &ob),
        SL_ERR_INVAL);
}

static void test_fingerprint_and_node_id(void **state)
{
    (void)state;
    uint8_t c1[32], s1[32], c1b[32], s1b[32], c2[32], s2[32];
    uint64_t id1 = 0, id1b = 1, id2 = 0;
    assert_int_equal(sl__tls_fingerprint(P("n1.pem"), c1, s1, &id1), SL_OK);
    assert_int_equal(sl__tls_fingerprint(P("n1.pem"), c1b, s1b, &id1b), SL_OK);
    assert_int_equal(sl__tls_fingerprint(P("n2.pem"), c2, s2, &id2), SL_OK);
    assert_hash_eq(c1, c1b);
    assert_hash_eq(s1, s1b);
    assert_int_equal(id1, id1b);
    assert_memory_not_equal(c1, c2, 32);
    assert_memory_not_equal(s1, s2, 32);
    assert_int_not_equal(id1, id2);
    /* The node id is the big-endian head of the SPKI hash. */
    uint64_t head = 0;
    for (int i = 0; i < 8; i++)
        head = (head << 8) | s1[i];
    assert_int_equal(id1, head);

    /* The SPKI hash is SHA-256 over the DER SubjectPublicKeyInfo. */
    gnutls_x509_crt_t crt = load_crt("n1.pem");
    gnutls_pubkey_t pk;
    gnutls_datum_t der = {NULL, 0};
    uint8_t want[32];
    assert_int_equal(gnutls_pubkey_init(&pk), 0);
    assert_int_equal(gnutls_pubkey_import_x509(pk, crt, 0), 0);
    assert_int_equal(gnutls_pubkey_export2(pk, GNUTLS_X509_FMT_DER, &der), 0);
    assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, want), 0);
    assert_hash_eq(want, s1);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pk);

    /* The DER walk rejects every truncation of a real certificate. */
    assert_int_equal(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der), 0);
    const uint8_t *spki;
    size_t spki_len;
    assert_int_equal(sl__tls_der_spki(der.data, der.size, &spki, &spki_len), SL_OK);
    for (size_t n = 0; n < der.size; n++)
        assert_int_equal(sl__tls_der_spki(der.data, n, &spki, &spki_len), SL_ERR_TLS);
    gnutls_free(der.data);
    gnutls_x509_crt_deinit(crt);

    /* Credentials loaded from the same files report the same identity. */
    sl_tls_settings s = settings("n1.pem", "n1.key", "ca.pem", SL_VERIFY_CA);
    sl__tls_creds *c = creds(&s);
    uint8_t own[32];
    uint64_t own_id = 0;
    assert_int_equal(sl__tls_cert_sha256(c, own), SL_OK);
    assert_hash_eq(own, c1);
    assert_int_equal(sl__tls_spki_sha256(c, own), SL_OK);
    assert_hash_eq(own, s1);
    assert_int_equal(sl__tls_own_node_id(c, &own_id), SL_OK);
    assert_int_equal(own_id, id1);
    assert_false(sl__tls_creds_generated(c));
    sl__tls_creds_del(c);
}

static void test_file_errors(void **state)
{
    (void)state;
    uint8_t h[32];
    sl__tls_creds *c = NULL;
    /* Missing or unreadable files: SL_ERR_IO. */
    assert_int_equal(sl__tls_fingerprint(P("missing.pem"), h, NULL, NULL), SL_ERR_IO);
    assert_int_equal(sl__tls_fingerprint(dir, h, NULL, NULL), SL_ERR_IO); /* a directory */
    sl_tls_settings s = settings("missing.pem", "n1.key", NULL, SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_IO);
    s = settings("n1.pem", "missing.key", NULL, SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_IO);
    s = settings(NULL, NULL, "missing.pem", SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_IO);
    assert_int_equal(
        sl__tls_issue_node_cert(P("ca.pem"), P("missing.key"), P("t3.pem"), P("t3.key"), NULL),
        SL_ERR_IO);
    assert_int_equal(sl__tls_make_ca(P("nodir/ca.pem"), P("nodir/ca.key"), NULL), SL_ERR_IO);

    /* Garbage: SL_ERR_TLS. */
    assert_int_equal(sl__tls_fingerprint(P("bad.pem"), h, NULL, NULL), SL_ERR_TLS);
    assert_int_equal(sl__tls_fingerprint(P("empty.pem"), h, NULL, NULL), SL_ERR_TLS);
    assert_int_equal(sl__tls_fingerprint(P("n1.key"), h, NULL, NULL), SL_ERR_TLS);
    s = settings("bad.pem", "n1.key", NULL, SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_TLS);
    s = settings("n1.pem", "bad.pem", NULL, SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_TLS);
    s = settings(NULL, NULL, "bad.pem", SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_TLS);
    s = settings("n1.pem", "n2.key", NULL, SL_VERIFY_CA); /* key of another cert */
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_TLS);
    s = settings("nx.pem", "nx.key", "ca.pem", SL_VERIFY_CA); /* our own cert expired */
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_TLS);

    /* Settings that cannot work: SL_ERR_INVAL. */
    s = settings("n1.pem", NULL, NULL, SL_VERIFY_CA);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_INVAL);
    s = settings(NULL, NULL, NULL, 9);
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_INVAL);
    s = settings(NULL, NULL, NULL, SL_VERIFY_CA);
    s.require_client_cert = true; /* the server could not verify anyone */
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_INVAL);
    s = settings(NULL, NULL, NULL, SL_VERIFY_PIN_SPKI);
    s.require_client_cert = true; /* zero pin */
    assert_int_equal(sl__tls_creds_new(&s, NULL, &c), SL_ERR_INVAL);
    assert_int_equal(sl__tls_creds_new(NULL, NULL, &c), SL_ERR_INVAL);
    assert_null(c);

    /* A client session whose mode cannot verify fails at setup, with the reason. */
    s = settings(NULL, NULL, NULL, SL_VERIFY_CA);
    c = creds(&s);
    assert_true(sl__tls_creds_generated(c));
    gnutls_session_t sess;
    assert_int_equal(gnutls_init(&sess, GNUTLS_CLIENT), 0);
    assert_int_equal(sl__tls_session_setup(c, sess, false), SL_ERR_INVAL);
    assert_non_null(strstr(sl__tls_last_error(c), "ca_file"));
    gnutls_deinit(sess);
    assert_int_equal(gnutls_init(&sess, GNUTLS_SERVER), 0);
    assert_int_equal(sl__tls_session_setup(c, sess, true), SL_OK); /* a server verifies nobody */
    gnutls_deinit(sess);
    sl__tls_creds_del(c);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    sl_tls_settings s = settings("n1.pem", "n1.key", "ca.pem", SL_VERIFY_CA);
    s.server_name = "localhost";
    int ok = 0;
    for (long n = 1; n < 64 && !ok; n++) {
        counting m = {0, 0, n};
        sl_mem mem = counting_mem(&m);
        sl__tls_creds *c = NULL;
        int rc = sl__tls_creds_new(&s, &mem, &c);
        if (rc == SL_OK) {
            ok = 1;
            assert_true(m.live > 0);
            sl__tls_creds_del(c);
        } else {
            assert_int_equal(rc, SL_ERR_NOMEM);
            assert_null(c);
        }
        assert_int_equal(m.live, 0);
    }
    assert_true(ok);
}

/* ------------------------------------------------------------ handshakes */

static void test_handshake_ca(void **state)
{
    (void)state;
    sl_tls_settings ss = settings("n1.pem", "n1.key", "ca.pem", SL_VERIFY_CA);
    sl_tls_settings cs = settings("n2.pem", "n2.key", "ca.pem", SL_VERIFY_CA);
    sl__tls_creds *server = creds(&ss), *client = creds(&cs);
    pair p;
    handshake(&p, client, server);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    assert_int_equal(gnutls_protocol_get_version(p.cs), GNUTLS_TLS1_3);
    /* The client knows the server's node id; the server did not ask for a certificate. */
    uint64_t peer = 0, own = 1;
    assert_int_equal(sl__tls_peer_node_id(p.cs, &peer), SL_OK);
    assert_int_equal(sl__tls_own_node_id(server, &own), SL_OK);
    assert_int_equal(peer, own);
    uint8_t a[32], b[32];
    assert_int_equal(sl__tls_peer_cert_sha256(p.cs, a), SL_OK);
    assert_int_equal(sl__tls_cert_sha256(server, b), SL_OK);
    assert_hash_eq(a, b);
    assert_int_equal(sl__tls_peer_node_id(p.ss, &peer), SL_ERR_NOTFOUND);
    pair_fini(&p);

    /* Wrong CA: the client rejects the server, and says why. */
    sl__tls_creds *other = creds(&(sl_tls_settings){.ca_file = P("ca2.pem")});
    handshake(&p, other, server);
    assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
    assert_int_not_equal(p.src, 0);
    assert_non_null(strstr(sl__tls_last_error(other), "rejected"));
    assert_non_null(strstr(sl__tls_last_error(other), "issuer"));
    pair_fini(&p);
    sl__tls_creds_del(other);

    /* A development (self-signed) server fails CA verification too. */
    sl__tls_creds *dev = creds(&(sl_tls_settings){.verify = SL_VERIFY_CA});
    handshake(&p, client, dev);
    assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
    pair_fini(&p);
    sl__tls_creds_del(dev);
    sl__tls_creds_del(server);
    sl__tls_creds_del(client);
}

static void test_handshake_server_name(void **state)
{
    (void)state;
    sl_tls_settings ss = settings("n1.pem", "n1.key", NULL, SL_VERIFY_CA);
    sl__tls_creds *server = creds(&ss);
    const char *names[] = {"localhost", "127.0.0.1", "::1", "example.com", "10.9.9.9"};
    const int ok[] = {1, 1, 1, 0, 0};
    for (int i = 0; i < 5; i++) {
        sl_tls_settings cs = settings(NULL, NULL, "ca.pem", SL_VERIFY_CA);
        cs.server_name = names[i];
        sl__tls_creds *client = creds(&cs);
        pair p;
        handshake(&p, client, server);
        if (ok[i]) {
            assert_int_equal(p.crc, 0);
            assert_int_equal(p.src, 0);
        } else {
            assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
            assert_non_null(strstr(sl__tls_last_error(client), "name in the certificate"));
        }
        pair_fini(&p);
        sl__tls_creds_del(client);
    }
    sl__tls_creds_del(server);
}

static void test_handshake_pins(void **state)
{
    (void)state;
    sl__tls_creds *server = creds(&(sl_tls_settings){.verify = SL_VERIFY_CA}); /* dev cert */
    for (int mode = SL_VERIFY_PIN_CERT; mode <= SL_VERIFY_PIN_SPKI; mode++) {
        sl_tls_settings cs = settings(NULL, NULL, NULL, mode);
        if (mode == SL_VERIFY_PIN_CERT)
            assert_int_equal(sl__tls_cert_sha256(server, cs.pin), SL_OK);
        else
            assert_int_equal(sl__tls_spki_sha256(server, cs.pin), SL_OK);
        sl__tls_creds *good = creds(&cs);
        cs.pin[31] ^= 1;
        sl__tls_creds *bad = creds(&cs);
        pair p;
        handshake(&p, good, server);
        assert_int_equal(p.crc, 0);
        assert_int_equal(p.src, 0);
        pair_fini(&p);
        handshake(&p, bad, server);
        assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
        assert_non_null(strstr(sl__tls_last_error(bad), "pinned"));
        pair_fini(&p);
        sl__tls_creds_del(good);
        sl__tls_creds_del(bad);
    }
    sl__tls_creds_del(server);
}

static void test_handshake_none_and_dev_cert(void **state)
{
    (void)state;
    sl__tls_creds *server = creds(&(sl_tls_settings){.verify = SL_VERIFY_CA});
    sl__tls_creds *client = creds(&(sl_tls_settings){.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY});
    assert_true(sl__tls_creds_generated(server));
    pair p;
    handshake(&p, client, server);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);

    /* The generated certificate, as the peer received it. */
    unsigned n = 0;
    const gnutls_datum_t *peers = gnutls_certificate_get_peers(p.cs, &n);
    assert_non_null(peers);
    assert_int_equal(n, 1);
    gnutls_x509_crt_t crt;
    assert_int_equal(gnutls_x509_crt_init(&crt), 0);
    assert_int_equal(gnutls_x509_crt_import(crt, &peers[0], GNUTLS_X509_FMT_DER), 0);
    assert_leaf_shape(crt, 14 * 86400);
    uint8_t fp[32], own[32];
    size_t fp_len = sizeof fp;
    assert_int_equal(gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fp_len), 0);
    assert_int_equal(sl__tls_cert_sha256(server, own), SL_OK);
    assert_hash_eq(fp, own);
    /* Chromium wants notAfter - notBefore <= 14 days and now inside: checked above. */
    gnutls_x509_crt_deinit(crt);
    pair_fini(&p);

    /* Two generated certificates are two identities. */
    uint64_t a = 0, b = 0;
    assert_int_equal(sl__tls_own_node_id(server, &a), SL_OK);
    assert_int_equal(sl__tls_own_node_id(client, &b), SL_OK);
    assert_int_not_equal(a, b);
    sl__tls_creds_del(server);
    sl__tls_creds_del(client);
}

static void test_handshake_expired(void **state)
{
    (void)state;
    uint8_t pin[32];
    assert_int_equal(sl__tls_fingerprint(P("nx.pem"), pin, NULL, NULL), SL_OK);
    sl_tls_settings by_ca = settings(NULL, NULL, "ca.pem", SL_VERIFY_CA);
    sl_tls_settings by_pin = settings(NULL, NULL, NULL, SL_VERIFY_PIN_CERT);
    memcpy(by_pin.pin, pin, 32);
    sl__tls_creds *clients[2] = {creds(&by_ca), creds(&by_pin)};
    for (int i = 0; i < 2; i++) {
        pair p;
        raw_server(&p, "nx.pem", "nx.key");
        assert_int_equal(sl__tls_session_setup(clients[i], p.cs, false), SL_OK);
        pair_run(&p);
        assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
        assert_non_null(strstr(sl__tls_last_error(clients[i]), "xpired"));
        pair_fini(&p);
        sl__tls_creds_del(clients[i]);
    }
}

static void test_handshake_mutual(void **state)
{
    (void)state;
    sl_tls_settings ss = settings("n1.pem", "n1.key", "ca.pem", SL_VERIFY_CA);
    ss.require_client_cert = true;
    sl__tls_creds *server = creds(&ss);

    /* A CA-signed client: both sides know each other's node id. */
    sl_tls_settings cs = settings("n2.pem", "n2.key", "ca.pem", SL_VERIFY_CA);
    sl__tls_creds *client = creds(&cs);
    pair p;
    handshake(&p, client, server);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    uint64_t seen = 0, own = 1;
    assert_int_equal(sl__tls_peer_node_id(p.ss, &seen), SL_OK);
    assert_int_equal(sl__tls_own_node_id(client, &own), SL_OK);
    assert_int_equal(seen, own);
    assert_int_equal(sl__tls_peer_node_id(p.cs, &seen), SL_OK);
    assert_int_equal(sl__tls_own_node_id(server, &own), SL_OK);
    assert_int_equal(seen, own);
    pair_fini(&p);

    /* Client certificates the server must refuse: another CA's, self-signed. */
    const char *certs[][2] = {{"n3.pem", "n3.key"}, {"d.pem", "d.key"}};
    for (int i = 0; i < 2; i++) {
        sl_tls_settings bs = settings(certs[i][0], certs[i][1], "ca.pem", SL_VERIFY_CA);
        sl__tls_creds *bad = creds(&bs);
        handshake(&p, bad, server);
        assert_int_equal(p.src, GNUTLS_E_CERTIFICATE_ERROR);
        assert_non_null(strstr(sl__tls_last_error(server), "rejected"));
        pair_fini(&p);
        sl__tls_creds_del(bad);
    }

    /* No client certificate at all: a GnuTLS client with empty credentials. */
    pair_init(&p);
    gnutls_certificate_credentials_t empty;
    assert_int_equal(gnutls_certificate_allocate_credentials(&empty), 0);
    p.raw = empty;
    assert_int_equal(gnutls_credentials_set(p.cs, GNUTLS_CRD_CERTIFICATE, empty), 0);
    assert_int_equal(gnutls_priority_set_direct(p.cs, SL__TLS_PRIORITY, NULL), 0);
    assert_int_equal(sl__tls_session_setup(server, p.ss, true), SL_OK);
    pair_run(&p);
    assert_true(p.src < 0);
    assert_int_equal(sl__tls_peer_node_id(p.ss, &seen), SL_ERR_NOTFOUND);
    pair_fini(&p);

    /* Mutual TLS with pins: the server pins the client's key. */
    sl_tls_settings ps = settings("n1.pem", "n1.key", NULL, SL_VERIFY_PIN_SPKI);
    ps.require_client_cert = true;
    assert_int_equal(sl__tls_spki_sha256(client, ps.pin), SL_OK);
    sl__tls_creds *pinning = creds(&ps);
    handshake(&p, client, pinning);
    assert_int_equal(p.crc, 0);
    assert_int_equal(p.src, 0);
    pair_fini(&p);
    sl__tls_creds_del(pinning);

    sl__tls_creds_del(client);
    sl__tls_creds_del(server);
}

static void test_fail_closed_and_tls13_only(void **state)
{
    (void)state;
    sl__tls_creds *server = creds(&(sl_tls_settings){.verify = SL_VERIFY_CA});
    sl__tls_creds *client = creds(&(sl_tls_settings){.verify = SL_VERIFY_NONE_INSECURE_DEV_ONLY});

    /* Our credentials on a session that skipped sl__tls_session_setup: rejected. */
    pair p;
    pair_init(&p);
    void *gc = NULL;
    assert_int_equal(sl__tls_session_setup(client, p.cs, false), SL_OK);
    assert_int_equal(gnutls_credentials_get(p.cs, GNUTLS_CRD_CERTIFICATE, &gc), 0);
    gnutls_deinit(p.cs);
    assert_int_equal(gnutls_init(&p.cs, GNUTLS_CLIENT | GNUTLS_NONBLOCK), 0);
    gnutls_transport_set_int(p.cs, p.fd[0]);
    assert_int_equal(gnutls_credentials_set(p.cs, GNUTLS_CRD_CERTIFICATE, gc), 0);
    assert_int_equal(gnutls_priority_set_direct(p.cs, SL__TLS_PRIORITY, NULL), 0);
    assert_int_equal(sl__tls_session_setup(server, p.ss, true), SL_OK);
    pair_run(&p);
    assert_int_equal(p.crc, GNUTLS_E_CERTIFICATE_ERROR);
    assert_non_null(strstr(sl__tls_last_error(client), "sl__tls_session_setup"));
    pair_fini(&p);

    /* A TLS 1.2-only client cannot talk to us. */
    pair_init(&p);
    gnutls_certificate_credentials_t empty;
    assert_int_equal(gnutls_certificate_allocate_credentials(&empty), 0);
    p.raw = empty;
    assert_int_equal(gnutls_credentials_set(p.cs, GNUTLS_CRD_CERTIFICATE, empty), 0);
    assert_int_equal(gnutls_priority_set_direct(p.cs, "NORMAL:-VERS-ALL:+VERS-TLS1.2", NULL), 0);
    assert_int_equal(sl__tls_session_setup(server, p.ss, true), SL_OK);
    pair_run(&p);
    assert_true(p.crc < 0);
    assert_true(p.src < 0);
    pair_fini(&p);

    sl__tls_creds_del(server);
    sl__tls_creds_del(client);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_cert_file),
        cmocka_unit_test(test_ca_and_node_chain),
        cmocka_unit_test(test_fingerprint_and_node_id),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_handshake_ca),
        cmocka_unit_test(test_handshake_server_name),
        cmocka_unit_test(test_handshake_pins),
        cmocka_unit_test(test_handshake_none_and_dev_cert),
        cmocka_unit_test(test_handshake_expired),
        cmocka_unit_test(test_handshake_mutual),
        cmocka_unit_test(test_fail_closed_and_tls13_only),
    };
    return cmocka_run_group_tests_name("tls", tests, group_setup, group_teardown);
}
