/*
 * common.h — the few things every qbcdc module shares: one error convention,
 * logging, allocation that dies on OOM, growable buffers, comma-separated lists, clocks,
 * monotonic timed waits, ISO-8601 time, URL encoding and base64 (the JSON scanner has its
 * own header, json_scan.h).
 *
 * Error convention (STYLE.md part 2.3): functions return int, 0 on success or
 * a negative code. System errors are -errno; our own codes live in a reserved
 * range (QBC_E*) that cannot collide with -errno values. qbc_strerror() renders
 * both. Outputs are out-parameters placed last.
 */
#ifndef QBC_COMMON_H
#define QBC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>
#include <pthread.h>

#ifndef QBCDC_VERSION
#define QBCDC_VERSION "0.0.0"
#endif

/* ============================== errors ============================== */

#define QBC_ERR_BASE (-30900)
#define QBC_EINVAL (QBC_ERR_BASE - 1)     /**< bad argument or configuration value */
#define QBC_EMALFORMED (QBC_ERR_BASE - 2) /**< input does not parse */
#define QBC_EAUTH (QBC_ERR_BASE - 3)      /**< signature or credentials rejected */
#define QBC_ETOOBIG (QBC_ERR_BASE - 4)    /**< input over its size limit */
#define QBC_EFULL (QBC_ERR_BASE - 5)      /**< store map full and cannot grow further */
#define QBC_ESTORE (QBC_ERR_BASE - 6)     /**< LMDB failed; details were logged */
#define QBC_ECLOSED (QBC_ERR_BASE - 7)    /**< component is shutting down */
#define QBC_ENOTFOUND (QBC_ERR_BASE - 8)  /**< no such record */
#define QBC_EDUP (QBC_ERR_BASE - 9)       /**< already stored (a duplicate) */
#define QBC_EGONE (QBC_ERR_BASE - 10)     /**< the records asked for were removed by retention */
#define QBC_ECRYPTO (QBC_ERR_BASE - 11)   /**< encryption or decryption failed (OpenSSL) */
#define QBC_ERR_LAST QBC_ECRYPTO

/** 1 when rc is one of qbcdc's own codes (QBC_E*), 0 for 0, -errno and anything else. */
static inline int qbc_is_own_error(int rc)
{
    return rc < QBC_ERR_BASE && rc >= QBC_ERR_LAST;
}

/**
 * returns a static, human-readable description of a code returned by any qbc_
 * function: 0, -errno, or QBC_E*. Never NULL.
 */
const char *qbc_strerror(int rc);

/* ============================== logging ============================= */

enum { QBC_LOG_ERROR = 0, QBC_LOG_WARN = 1, QBC_LOG_INFO = 2, QBC_LOG_DEBUG = 3 };

/**
 * sets the most verbose level that is printed (default QBC_LOG_INFO).
 * Parses "error", "warn", "info", "debug"; returns QBC_EINVAL for anything else.
 */
int qbc_log_set_level_name(const char *name);
/**
 * "text" (default: "<time> <level> <module>: <message>") or "json": one object a line,
 * {"time","level","module","message"} and "realm" when the message is about one.
 * @return 0, or QBC_EINVAL for another name
 */
int qbc_log_set_format_name(const char *name);
void qbc_log_set_level(int level);
int qbc_log_enabled(int level);

/**
 * writes one line to stderr: "<UTC time> <level> <module>: <message>\n". Thread-safe
 * (one write(2) per line). Callers must never pass secrets (tokens, keys) in the
 * message: logs are assumed to be shipped elsewhere.
 */
void qbc_log(int level, const char *module, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ============================== memory ============================== */

/**
 * malloc/calloc/realloc/strdup that print file:line and abort() on failure.
 * Use them for small, internally sized allocations. Sizes driven by clients
 * (request bodies) use plain malloc and turn failure into an HTTP error.
 */
#define qbc_alloc(sz) qbc__alloc((sz), __FILE__, __LINE__)
#define qbc_calloc(n, sz) qbc__calloc((n), (sz), __FILE__, __LINE__)
#define qbc_realloc(p, sz) qbc__realloc((p), (sz), __FILE__, __LINE__)
#define qbc_strdup(s) qbc__strndup((s), (size_t)-1, __FILE__, __LINE__)
#define qbc_strndup(s, n) qbc__strndup((s), (n), __FILE__, __LINE__)
void *qbc__alloc(size_t sz, const char *file, int line);
void *qbc__calloc(size_t n, size_t sz, const char *file, int line);
void *qbc__realloc(void *p, size_t sz, const char *file, int line);
char *qbc__strndup(const char *s, size_t n, const char *file, int line);

/** a growable buffer, NUL-terminated after its len bytes once anything is in it (data NULL before) */
typedef struct st_qbc_buf_t {
    char *data;
    size_t len, cap;
    size_t max; /**< the most bytes it takes (0: no limit); set before the first append */
} qbc_buf_t;
/** appends n bytes; 0, or -1 (nothing appended) if that would pass max. */
int qbc_buf_append(qbc_buf_t *b, const void *p, size_t n);
/** appends printf-formatted text; 0, or -1 (nothing appended) if that would pass max. */
int qbc_buf_printf(qbc_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** libcurl's CURLOPT_WRITEFUNCTION shape, with a qbc_buf_t as its data: appends, failing the transfer past max. */
size_t qbc_buf_write_cb(char *p, size_t size, size_t nmemb, void *ud);
/** frees the bytes (wipe: zero them first, for secrets such as token answers) and empties the buffer. */
void qbc_buf_free(qbc_buf_t *b, int wipe);

/* ======================= comma-separated lists ====================== */

/**
 * the entry at p of a comma-separated list: *item and *len (an entry may be empty);
 * returns where the next one starts, or NULL when p is at the end. Walk a list with
 *   for (const char *p = list; (p = qbc_list_next(p, &e, &n)) != NULL;) ...
 */
const char *qbc_list_next(const char *p, const char **item, size_t *len);
/** 1 if item is one of the list's entries */
int qbc_list_has(const char *list, const char *item);
/** appends item (after a comma if buf is not empty); -1, buf unchanged, if it does not fit in bufsz */
int qbc_list_add(char *buf, size_t bufsz, const char *item);

/** aborts with file:line and a message; for broken invariants only. */
#define qbc_fatal(...) qbc__fatal(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((noreturn, format(printf, 3, 4))) void qbc__fatal(const char *file, int line, const char *fmt, ...);

/* =============================== time =============================== */

/** wall-clock time in nanoseconds since the Unix epoch. */
int64_t qbc_now_ns(void);
/** monotonic time in nanoseconds (for durations only). */
int64_t qbc_mono_ns(void);

/**
 * initialises a condition variable whose timed waits run on CLOCK_MONOTONIC, the clock
 * of qbc_mono_ns(), so that a deadline does not move when the wall clock is set (NTP, an
 * operator). Every condition variable that is waited on with qbc_cond_wait_until() must
 * be initialised here: pthread_cond_init(cv, NULL) gives CLOCK_REALTIME, which reads a
 * monotonic deadline as a time in 1970 and times out at once.
 * Like pthread_cond_init, and unlike the rest of this header, it returns a positive errno.
 * Destroy it with pthread_cond_destroy.
 * @param[out] cv the condition variable to initialise
 * @return 0 on success, or an error from pthread_condattr_init, pthread_condattr_setclock
 * or pthread_cond_init. Some possible errors are:
 *   <ul>
 *   <li>ENOMEM - not enough memory to initialise it.
 *   <li>EAGAIN - the system lacked other resources.
 *   </ul>
 */
int qbc_cond_init_mono(pthread_cond_t *cv);

/**
 * waits on cv until it is signalled or qbc_mono_ns() reaches deadline_mono_ns. mu is
 * released while waiting and held again on return, whatever the result. Spurious
 * wake-ups return 0 like signals do, so callers wait in a loop that re-checks their
 * condition and stops on ETIMEDOUT. A deadline already reached returns ETIMEDOUT without
 * waiting (and without releasing mu).
 * Like pthread_cond_timedwait, it returns a positive errno value.
 * @param[in] cv a condition variable from qbc_cond_init_mono()
 * @param[in] mu the mutex that guards the condition; the caller holds it
 * @param[in] deadline_mono_ns when to stop waiting, on the qbc_mono_ns() clock: qbc_mono_ns()
 * plus the longest wait, computed once before the loop so that wake-ups do not extend it
 * @return 0 when woken (a signal, a broadcast or a spurious wake-up), or
 *   <ul>
 *   <li>ETIMEDOUT - the deadline passed (also when it had already passed on entry).
 *   </ul>
 */
int qbc_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t deadline_mono_ns);

/**
 * the reason phrase of an HTTP status code (RFC 9110) for the codes qbcdc and qbosim send or
 * relay; "Unknown" for others (the phrase is informational: clients go by the code).
 */
const char *qbc_http_reason(int status);

/* ---- worker.c: a thread of one's own that stops when asked ---- */

/**
 * the scaffolding every background thread here shares (the cluster's bucket syncs, the feed
 * mirror): a mutex that guards the owner's state, a monotonic condition variable that wakes
 * the thread, and the stop flag. The owner embeds one, locks mu around its own shared fields,
 * and signals cv when the thread has something to do.
 */
typedef struct st_qbc_worker_t {
    pthread_mutex_t mu;
    pthread_cond_t cv; /**< from qbc_cond_init_mono: naps have monotonic deadlines */
    int stop;          /**< under mu: set by qbc_worker_join */
    int started;
    pthread_t thread;
} qbc_worker_t;

/** initialises mu and cv (aborts when the system cannot make a condition variable). */
void qbc_worker_init(qbc_worker_t *w);

/** starts fn(arg) on a thread of its own. @return 0, or -errno (nothing started) */
int qbc_worker_start(qbc_worker_t *w, void *(*fn)(void *), void *arg);

/** whether the thread has been asked to stop (takes mu: call it without). */
int qbc_worker_stopping(qbc_worker_t *w);

/** waits up to ms milliseconds, or until cv is signalled or the thread is asked to stop (takes mu). @return stopping */
int qbc_worker_nap(qbc_worker_t *w, int64_t ms);

/** asks the thread to stop, wakes it and waits for it to return (nothing when never started). */
void qbc_worker_join(qbc_worker_t *w);

/**
 * waits until *count (a field under mu that others decrement, signalling cv) is 0, or ms
 * milliseconds have passed: e.g. the store jobs a stopping owner still has out.
 * @return 1 when it reached 0, 0 when the time ran out
 */
int qbc_worker_drain(qbc_worker_t *w, const unsigned *count, int64_t ms);

/** destroys mu and cv, after qbc_worker_join. */
void qbc_worker_dispose(qbc_worker_t *w);

/**
 * parses an ISO-8601 date-time as QBO sends it: "YYYY-MM-DDTHH:MM[:SS[.fraction]]"
 * followed by "Z", "±HH:MM" or "±HHMM". The fraction may have 1 to 9 digits.
 * A date-time without an offset is rejected: QBO would read it as Pacific time,
 * and guessing is how changes get lost (qbo-facts §11).
 * @param s text, not necessarily NUL-terminated
 * @param len its length in bytes
 * @param out_ns nanoseconds since the Unix epoch (UTC)
 * @return 0, or QBC_EMALFORMED
 */
int qbc_time_parse(const char *s, size_t len, int64_t *out_ns);

/**
 * formats nanoseconds since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, millisecond
 * precision) into buf, which must hold at least QBC_TIME_BUFSZ bytes. Returns buf.
 */
#define QBC_TIME_BUFSZ 48
char *qbc_time_format(int64_t ns, char *buf);

/** days since 1970-01-01 of a proleptic Gregorian date (y, month 1-12, day 1-31). */
int64_t qbc_days_from_civil(int64_t y, unsigned m, unsigned d);

/* ================================ url =============================== */

/**
 * percent-encodes s into out (NUL-terminated; stops early rather than overflow outsz,
 * so size out at 3x the input plus one). Returns the length written.
 */
size_t qbc_url_encode(const char *s, char *out, size_t outsz);

/**
 * decodes a form or query value: '+' is a space, %XX a byte; a '%' not followed by two
 * hex digits stays as it is. out is always NUL-terminated (when outsz > 0).
 * @param out_len bytes written, without the NUL (may be NULL)
 * @return 0, or QBC_ETOOBIG when the value did not fit (out then holds what did)
 */
int qbc_url_decode(const char *s, size_t len, char *out, size_t outsz, size_t *out_len);

/* ============================== base64 ============================== */

/** bytes needed to base64-encode n bytes, including the terminating NUL. */
#define QBC_BASE64_ENCODED_SIZE(n) ((((n) + 2) / 3) * 4 + 1)

/** standard (RFC 4648 §4) base64 with padding; writes a NUL-terminated string, returns its length. */
size_t qbc_base64_encode(const void *src, size_t len, char *dst);

/**
 * decodes standard base64 (padding required, no whitespace) into dst, which must hold
 * at least (len / 4) * 3 bytes.
 * @param out_len number of decoded bytes
 * @return 0, or QBC_EMALFORMED
 */
int qbc_base64_decode(const char *src, size_t len, void *dst, size_t *out_len);

#endif
