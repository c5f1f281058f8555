/*
 * starling/common.h: what every Starling module shares.
 *
 * One error space (sl_err, generated with the other tables from one X-macro
 * list), the export macro, priority classes, and the allocator hook. Nothing
 * here allocates or does I/O.
 */
#ifndef STARLING_COMMON_H
#define STARLING_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SL_EXTERN __declspec(dllexport)
#elif defined(__GNUC__)
#define SL_EXTERN __attribute__((visibility("default")))
#else
#define SL_EXTERN
#endif

#define SL_VERSION_MAJOR 0
#define SL_VERSION_MINOR 1
#define SL_VERSION_PATCH 0
#define SL_VERSION_STRING "0.1.0"

/*
 * The error space. Every public function that can fail returns SL_OK (0) or
 * one of these negative codes. XX(NAME, value, message).
 */
#define SL_ERRNO_MAP(XX)                                                              \
    XX(NOMEM, -1, "out of memory")                                                    \
    XX(INVAL, -2, "invalid argument")                                                 \
    XX(NOACTOR, -3, "no such actor (unknown id, or the actor has stopped)")          \
    XX(MAILBOX_FULL, -4, "the receiver's mailbox is full")                            \
    XX(TIMEOUT, -5, "deadline expired")                                               \
    XX(CANCELLED, -6, "operation was cancelled")                                      \
    XX(EXISTS, -7, "already exists (e.g. the name is registered)")                   \
    XX(NOTFOUND, -8, "not found")                                                     \
    XX(STOPPED, -9, "the node or actor system is stopping")                          \
    XX(LIMIT, -10, "a configured limit was reached")                                  \
    XX(AGAIN, -11, "resource temporarily unavailable; retry later")                   \
    XX(MSG_TOO_BIG, -12, "message larger than the configured maximum")                \
    XX(FORBIDDEN, -13, "not permitted")                                               \
    XX(ACTOR_DOWN, -14, "the asked actor stopped before replying")                    \
    XX(NOT_ACTOR, -15, "call is only valid from inside an actor callback")           \
    XX(BAD_ID, -16, "malformed actor id text")                                        \
    XX(BAD_NAME, -17, "invalid registry name (empty or too long)")                    \
    XX(IO, -18, "input/output error")                                                 \
    XX(TLS, -19, "TLS error")                                                         \
    XX(QUIC, -20, "QUIC protocol error")                                              \
    XX(PROTO, -21, "protocol violation by the peer")                                  \
    XX(CLOSED, -22, "connection or stream closed")                                    \
    XX(NOCONN, -23, "no connection to the node")                                      \
    XX(UNSUPPORTED, -24, "not supported")                                             \
    XX(DECODE_TRUNCATED, -40, "msgpack input ends before the value does")             \
    XX(DECODE_DEPTH, -41, "msgpack nesting deeper than the limit")                    \
    XX(DECODE_LENGTH, -42, "msgpack length exceeds the remaining bytes or the limit") \
    XX(DECODE_BUDGET, -43, "msgpack message exceeds its element budget")              \
    XX(DECODE_EXT, -44, "msgpack extension type not allowed")                         \
    XX(DECODE_TYPE, -45, "msgpack value has the wrong type for this field")           \
    XX(DECODE_TRAILING, -46, "bytes left over after the message")                     \
    XX(DECODE_VERSION, -47, "unsupported envelope version or shape")                  \
    XX(DECODE_TOO_BIG, -48, "encoded message larger than the maximum size")           \
    XX(DECODE_RESERVED, -49, "reserved byte 0xc1 or reserved flag bits set")

typedef enum sl_err {
    SL_OK = 0,
#define SL__ERR_ENUM(name, val, msg) SL_ERR_##name = (val),
    SL_ERRNO_MAP(SL__ERR_ENUM)
#undef SL__ERR_ENUM
} sl_err;

/* Human-readable message for an error code ("unknown error" if unknown). */
SL_EXTERN const char *sl_strerror(int err);
/* Symbolic name of an error code, e.g. "SL_ERR_NOACTOR". */
SL_EXTERN const char *sl_err_name(int err);

/*
 * Priority classes. Strict priority between classes (a lower number always
 * goes first), FIFO inside a class for one (sender, receiver) pair.
 */
typedef enum sl_prio {
    SL_PRIO_CRITICAL = 0,
    SL_PRIO_HIGH = 1,
    SL_PRIO_NORMAL = 2,
    SL_PRIO_LOW = 3,
    SL_PRIO_BACKGROUND = 4
} sl_prio;
#define SL_PRIO_COUNT 5

/* Name of a priority class ("CRITICAL" ...), or "?" if out of range. */
SL_EXTERN const char *sl_prio_name(int prio);

/*
 * Allocator hook. Any field left NULL falls back to the C library. Every
 * callback receives `ud`. realloc/calloc semantics are the C library's.
 */
typedef struct sl_mem {
    void *(*malloc)(size_t size, void *ud);
    void (*free)(void *ptr, void *ud);
    void *(*calloc)(size_t n, size_t size, void *ud);
    void *(*realloc)(void *ptr, size_t size, void *ud);
    void *ud;
} sl_mem;

/* The default allocator (the C library's). */
SL_EXTERN const sl_mem *sl_mem_default(void);

#ifdef __cplusplus
}
#endif
#endif /* STARLING_COMMON_H */
