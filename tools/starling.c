/*
 * starling.c: the `starling` command-line tool.
 *
 * Today it manages certificates (more commands, such as running a node and
 * inspecting a cluster, come with the runtime):
 *
 *   starling cert ca          a cluster CA (certificate + key)
 *   starling cert node        a node certificate signed by that CA
 *   starling cert dev         a 14-day self-signed development certificate
 *   starling cert fingerprint SHA-256 of a certificate and of its public key,
 *                             and the node id derived from that key
 *
 * All the cryptography is in transport/tls.c (GnuTLS); this file parses
 * arguments and prints. Exit status: 0 success, 1 a file or crypto error
 * (the message names the file), 2 a usage error.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "starling/common.h"
#include "transport/tls.h"

#define EXIT_USAGE 2
#define MAX_SANS 32

static const char usage_text[] =
    "usage: starling <command> [options]\n"
    "\n"
    "Commands:\n"
    "  cert ca --out-cert FILE --out-key FILE [--cn NAME] [--days N] [--force]\n"
    "      Create a cluster CA: ECDSA P-256 key (mode 0600) and self-signed\n"
    "      X.509 v3 certificate (default CN \"Starling cluster CA\", 3650 days).\n"
    "  cert node --ca-cert FILE --ca-key FILE --out-cert FILE --out-key FILE\n"
    "            [--cn NAME] [--days N] [--dns NAME]... [--ip ADDR]... [--force]\n"
    "      Issue a node certificate signed by the CA (serverAuth + clientAuth,\n"
    "      default 365 days, never beyond the CA's expiry).\n"
    "  cert dev --out-cert FILE --out-key FILE [--cn NAME] [--days N]\n"
    "           [--dns NAME]... [--ip ADDR]... [--force]\n"
    "      Write a self-signed development certificate, ECDSA P-256, valid at\n"
    "      most 14 days (the default), which browsers can pin by its SHA-256.\n"
    "  cert fingerprint FILE\n"
    "      Print the SHA-256 of the certificate (DER), of its public key (SPKI)\n"
    "      and the node id derived from the key.\n"
    "  version\n"
    "      Print the version.\n"
    "  help, --help, -h\n"
    "      Print this text.\n"
    "\n"
    "Options:\n"
    "  --dns, --ip   subjectAltName entries (repeatable); when none is given:\n"
    "                localhost, 127.0.0.1 and ::1\n"
    "  --force       replace existing output files (default: refuse)\n"
    "\n"
    "Exit status: 0 success, 1 file or certificate error, 2 usage error.\n";

/* Print "starling: <message>" and a hint; returns EXIT_USAGE. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("starling: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'starling --help'.\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

/* Parsed options of the cert subcommands. */
typedef struct opts {
    const char *out_cert, *out_key, *ca_cert, *ca_key, *cn;
    const char *days_text;
    const char *dns[MAX_SANS], *ip[MAX_SANS];
    size_t n_dns, n_ip;
    bool force;
    const char *positional; /* at most one */
} opts;

/* The option's value: "--name=value" or "--name value". NULL when missing. */
static const char *take_value(int argc, char **argv, int *i, const char *eq)
{
    if (eq)
        return eq + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

/* Parse argv[from..]; returns 0 or EXIT_USAGE (message printed). */
static int parse_opts(int argc, char **argv, int from, opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = from; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (a[0] == '-' && a[1] != '\0' && strcmp(a, "--") != 0)
                return usage_error("unknown option '%s'", a);
            if (strcmp(a, "--") == 0) {
                if (++i >= argc)
                    break;
                a = argv[i];
            }
            if (o->positional)
                return usage_error("unexpected argument '%s'", a);
            o->positional = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
#define IS(name) (nlen == strlen(name) && strncmp(a, name, nlen) == 0)
        if (IS("--force")) {
            if (eq)
                return usage_error("option '%s' takes no value", a);
            o->force = true;
            continue;
        }
        const char **slot = NULL;
        bool san_dns = false, san_ip = false;
        if (IS("--out-cert"))
            slot = &o->out_cert;
        else if (IS("--out-key"))
            slot = &o->out_key;
        else if (IS("--ca-cert"))
            slot = &o->ca_cert;
        else if (IS("--ca-key"))
            slot = &o->ca_key;
        else if (IS("--cn"))
            slot = &o->cn;
        else if (IS("--days"))
            slot = &o->days_text;
        else if (IS("--dns"))
            san_dns = true;
        else if (IS("--ip"))
            san_ip = true;
        else
            return usage_error("unknown option '%s'", a);
#undef IS
        const char *v = take_value(argc, argv, &i, eq);
        if (!v || !v[0])
            return usage_error("option '%s' needs a value", a);
        if (san_dns || san_ip) {
            size_t *n = san_dns ? &o->n_dns : &o->n_ip;
            if (*n == MAX_SANS)
                return usage_error("too many '%s' options", a);
            (san_dns ? o->dns : o->ip)[(*n)++] = v;
        } else {
            if (*slot)
                return usage_error("option '%s' given twice", a);
            *slot = v;
        }
    }
    return 0;
}

/* Options a subcommand does not accept are usage errors. */
static int reject(const opts *o, bool ca_files, bool sans, bool outputs)
{
    if (!ca_files && (o->ca_cert || o->ca_key))
        return usage_error("only 'cert node' takes --ca-cert/--ca-key");
    if (!sans && (o->n_dns || o->n_ip))
        return usage_error("'cert ca' does not take --dns/--ip (a CA has no names)");
    if (!outputs && (o->out_cert || o->out_key || o->cn || o->days_text || o->force))
        return usage_error("'cert fingerprint' takes only a file name");
    return 0;
}

static int parse_days(const char *text, unsigned max, unsigned *out)
{
    if (!text) {
        *out = 0;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || !end || *end || text[0] == '-' || text[0] == '+' || v == 0 || v > max) {
        return usage_error("--days must be a whole number from 1 to %u, not '%s'", max, text);
    }
    *out = (unsigned)v;
    return 0;
}

/* Exit status for a library error: its message is already on stderr. */
static int fail_status(int rc)
{
    if (rc == SL_ERR_EXISTS)
        fputs("starling: use --force to replace existing files\n", stderr);
    return rc == SL_ERR_INVAL ? EXIT_USAGE : 1;
}

static int print_fingerprint(const char *file)
{
    uint8_t cert[32], spki[32];
    uint64_t id;
    char hex[65];
    int rc = sl__tls_fingerprint(file, cert, spki, &id);
    if (rc != SL_OK)
        return fail_status(rc);
    sl__tls_hex(cert, 32, hex);
    printf("cert-sha256: %s\n", hex);
    sl__tls_hex(spki, 32, hex);
    printf("spki-sha256: %s\n", hex);
    printf("node-id: %016" PRIx64 "\n", id);
    return 0;
}

static int cmd_cert(int argc, char **argv)
{
    if (argc < 3)
        return usage_error("'cert' needs a subcommand: ca, node, dev or fingerprint");
    const char *sub = argv[2];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    bool is_ca = strcmp(sub, "ca") == 0, is_node = strcmp(sub, "node") == 0,
         is_dev = strcmp(sub, "dev") == 0, is_fp = strcmp(sub, "fingerprint") == 0;
    if (!is_ca && !is_node && !is_dev && !is_fp)
        return usage_error("unknown 'cert' subcommand '%s' (want ca, node, dev or fingerprint)",
                           sub);
    opts o;
    int rc = parse_opts(argc, argv, 3, &o);
    if (rc)
        return rc;

    if (is_fp) {
        if ((rc = reject(&o, false, false, false)))
            return rc;
        if (!o.positional)
            return usage_error("'cert fingerprint' needs a certificate file");
        return print_fingerprint(o.positional);
    }
    if (o.positional)
        return usage_error("unexpected argument '%s'", o.positional);
    if ((rc = reject(&o, is_node, !is_ca, true)))
        return rc;
    if (!o.out_cert)
        return usage_error("--out-cert FILE is required");
    if (!o.out_key)
        return usage_error("--out-key FILE is required");
    if (is_node && !o.ca_cert)
        return usage_error("--ca-cert FILE is required");
    if (is_node && !o.ca_key)
        return usage_error("--ca-key FILE is required");

    sl__tls_cert_opts co = {0};
    co.cn = o.cn;
    co.dns = o.dns;
    co.n_dns = o.n_dns;
    co.ip = o.ip;
    co.n_ip = o.n_ip;
    co.overwrite = o.force;
    if ((rc = parse_days(o.days_text, is_dev ? SL__TLS_DEV_MAX_DAYS : 36500, &co.days)))
        return rc;

    if (is_ca)
        rc = sl__tls_make_ca(o.out_cert, o.out_key, &co);
    else if (is_node)
        rc = sl__tls_issue_node_cert(o.ca_cert, o.ca_key, o.out_cert, o.out_key, &co);
    else
        rc = sl__tls_make_dev_cert(o.out_cert, o.out_key, &co);
    if (rc != SL_OK)
        return fail_status(rc);

    printf("wrote %s certificate %s and key %s (mode 0600)\n",
           is_ca     ? "CA"
           : is_node ? "node"
                     : "development",
           o.out_cert, o.out_key);
    rc = print_fingerprint(o.out_cert);
    if (rc == 0 && is_dev)
        printf("pin it in a browser with serverCertificateHashes: "
               "[{algorithm: \"sha-256\", value: <the cert-sha256 bytes>}]\n");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        if (argc > 2)
            return usage_error("'version' takes no arguments (got '%s')", argv[2]);
        printf("starling %s (GnuTLS %s)\n", SL_VERSION_STRING, gnutls_check_version(NULL));
        return 0;
    }
    if (strcmp(cmd, "cert") == 0)
        return cmd_cert(argc, argv);
    return usage_error("unknown command '%s'", cmd);
}
