/* The apiserver's object store: sqlite3 (WAL) for durability, a bounded
 * in-memory ring of events for watches. See store.h for the contract.
 *
 * Durability. A write returns only after its transaction's COMMIT returned,
 * and with journal_mode=WAL that means its pages were written (write(2)) to
 * modelgate.db-wal. With synchronous=NORMAL (the default here) the WAL is
 * not fsync'd on every commit: a killed process (kill -9, a crash, an OOM
 * kill) loses nothing, since the data sits in the kernel's page cache, but a
 * power loss or kernel panic may roll back the last commits (never corrupt
 * the file). as_store_set_sync(st, 1) switches to synchronous=FULL, which
 * fsyncs the WAL on every commit and so also covers power loss, at the cost
 * of one fsync per write.
 *
 * One process per data directory: as_store_open takes an exclusive flock on
 * DIR/modelgate.lock and refuses when another process holds it, because the
 * watch history lives in this process's memory and a second writer's
 * changes would never reach our watchers. (The write path itself re-reads
 * the stored counter and the object's RV inside each BEGIN IMMEDIATE
 * transaction, so even two processes on one file could not lose an update
 * or reuse an RV; the unit tests check that with the lock bypassed.)
 *
 * Watch delivery is synchronous, with each watcher remembering the last RV
 * it was given: a delivery round walks the watchers and catches each one up
 * from the ring in RV order. A callback may write, watch or unwatch; a write
 * made inside a callback is delivered by the round already running (after
 * the event being delivered), so every watcher sees every event once and in
 * order, and events a watcher has not been given yet are never evicted. */
#include "apiserver/store.h"

#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define AS_STORE_HISTORY_DEFAULT 10000u
/* The ring is also bounded by the size of what it holds (the objects'
 * serialised length): a stream of large objects keeps fewer events, and a
 * watch from before them gets 410 and relists, instead of the process
 * growing without bound. */
#define AS_STORE_HISTORY_BYTES (64u * 1024 * 1024)
/* Rows fetched per statement while listing: the statement is reset before
 * callbacks run, so they may call back into the store. */
#define AS_LIST_BATCH 256
#define AS_CONT_MAX 16384       /* longest continue token accepted (keys are short) */
#define AS_SCHEMA_VERSION 1
#define AS_BUSY_TIMEOUT_MS 5000

struct as_hist {
    enum as_event_type type;
    uint64_t rv;
    char *key;                  /* "gr\0ns\0name\0", one allocation */
    const char *ns, *name;      /* into key */
    char *text;                 /* the object, compact JSON */
    size_t bytes;               /* strlen(text) */
    json_t *obj;                /* parsed, only until its first delivery round ends */
};

struct as_watch {
    struct as_watch *next;
    char *gr, *ns;              /* ns NULL: every namespace */
    as_watch_cb cb;
    void *data;
    uint64_t last_rv;           /* events up to this RV were given (or skipped) */
    int dead;                   /* stopped; freed when no round is running */
};

enum as_stmt_id {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_META_RV, S_META_SET_RV,
    S_OBJ_GET, S_OBJ_INSERT, S_OBJ_UPDATE, S_OBJ_DELETE,
    S_LIST_ALL, S_LIST_NS, S_NEXT_GR, S_COUNT
};

static const char *const as_stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_META_RV] = "SELECT v FROM meta WHERE k = 'rv'",
    [S_META_SET_RV] = "UPDATE meta SET v = ?1 WHERE k = 'rv'",
    [S_OBJ_GET] = "SELECT rv, data FROM objects WHERE gr = ?1 AND ns = ?2 AND name = ?3",
    [S_OBJ_INSERT] = "INSERT INTO objects (gr, ns, name, rv, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_OBJ_UPDATE] = "UPDATE objects SET rv = ?4, data = ?5 WHERE gr = ?1 AND ns = ?2 AND name = ?3",
    [S_OBJ_DELETE] = "DELETE FROM objects WHERE gr = ?1 AND ns = ?2 AND name = ?3",
    [S_LIST_ALL] = "SELECT ns, name, rv, data FROM objects WHERE gr = ?1 AND (ns, name) > (?2, ?3) "
                   "ORDER BY gr, ns, name LIMIT ?4",
    [S_LIST_NS] = "SELECT ns, name, rv, data FROM objects WHERE gr = ?1 AND ns = ?2 AND name > ?3 "
                  "ORDER BY gr, ns, name LIMIT ?4",
    [S_NEXT_GR] = "SELECT gr FROM objects WHERE gr > ?1 ORDER BY gr LIMIT 1",
};

struct as_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    char *path;
    int lock_fd;
    uint64_t rv;                /* last committed */
    uint64_t floor;             /* a watch from RV >= floor is complete */
    /* history ring */
    struct as_hist *ring;
    unsigned cap, head, count, limit;
    size_t bytes, bytes_limit;
    /* watchers */
    struct as_watch *watchers;
    int delivering;             /* a delivery round is running */
    int need_sweep;
};

/* Internal open flags (the unit tests use AS_OPEN_NOLOCK to race two
 * processes on one file). */
#define AS_OPEN_NOLOCK 1

/* --- sqlite helpers --------------------------------------------------------- */

static int as_sqlite_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return -EROFS;
    default:
        return -EIO;
    }
}

static int as_db_fail(struct as_store *st, const char *what, int rc)
{
    mg_log(MG_LOG_ERROR, "store: sqlite failed", "op", MG_S(what), "db", MG_S(st->path),
           "error", MG_S(sqlite3_errmsg(st->db)), "code", MG_I(rc));
    return as_sqlite_errno(rc);
}

/* A cached statement, reset and with bindings cleared. */
static sqlite3_stmt *as_stmt(struct as_store *st, enum as_stmt_id id)
{
    sqlite3_stmt *s = st->stmt[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

static int as_exec1(struct as_store *st, enum as_stmt_id id, const char *what)
{
    sqlite3_stmt *s = as_stmt(st, id);
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return as_db_fail(st, what, rc);
    return 0;
}

static void as_bind_key(sqlite3_stmt *s, const char *gr, const char *ns, const char *name)
{
    sqlite3_bind_text(s, 1, gr, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, name, -1, SQLITE_STATIC);
}

/* --- objects as stored ------------------------------------------------------ */

/* Sets metadata.resourceVersion (creating metadata). -EINVAL when obj is not
 * an object or its metadata is not one. */
static int as_stamp_rv(json_t *obj, uint64_t rv)
{
    char buf[24];
    json_t *md;
    if (!json_is_object(obj))
        return -EINVAL;
    md = json_object_get(obj, "metadata");
    if (!md) {
        md = json_object();
        if (!md || json_object_set_new(obj, "metadata", md) != 0)
            return -ENOMEM;
    } else if (!json_is_object(md)) {
        return -EINVAL;
    }
    snprintf(buf, sizeof buf, "%" PRIu64, rv);
    if (json_object_set_new(md, "resourceVersion", json_string(buf)) != 0)
        return -ENOMEM;
    return 0;
}

/* Parses a stored row into a new object stamped with its RV. -EIO (logged)
 * when the text is not a JSON object: a hand-edited or damaged row. */
static int as_row_parse(struct as_store *st, const char *gr, const char *ns, const char *name,
                        const unsigned char *text, int len, uint64_t rv, json_t **out)
{
    json_error_t jerr;
    json_t *obj = NULL;
    *out = NULL;
    if (text && len >= 0)
        obj = json_loadb((const char *)text, (size_t)len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj || !json_is_object(obj) || as_stamp_rv(obj, rv) != 0) {
        mg_log(MG_LOG_ERROR, "store: stored object is not a valid JSON object", "db",
               MG_S(st->path), "gr", MG_S(gr), "namespace", MG_S(ns), "name", MG_S(name),
               "error", MG_S(obj ? "not an object with an object metadata" : jerr.text));
        json_decref(obj);
        return -EIO;
    }
    *out = obj;
    return 0;
}

static int as_key_ok(const char *gr, const char *name)
{
    return gr && *gr && name && *name;
}

/* --- history ---------------------------------------------------------------- */

static struct as_hist *as_hist_at(struct as_store *st, unsigned i)
{
    return &st->ring[(st->head + i) % st->cap];
}

static void as_hist_free(struct as_hist *h)
{
    free(h->key);
    free(h->text);
    json_decref(h->obj);
    memset(h, 0, sizeof *h);
}

/* Kept events hold text, not parsed objects: a parsed object costs several
 * times its text in memory, and the history is bounded by bytes of text.
 * The new events' objects, shared by the watchers of their first delivery
 * round, are let go once that round is over; replays parse the text. */
static void as_hist_drop_objs(struct as_store *st)
{
    for (unsigned i = st->count; i-- > 0;) {
        struct as_hist *h = as_hist_at(st, i);
        if (!h->obj)
            break;
        json_decref(h->obj);
        h->obj = NULL;
    }
}

/* The lowest RV some live watcher has not been given yet (UINT64_MAX when
 * every watcher is caught up). */
static uint64_t as_min_pending(struct as_store *st)
{
    uint64_t min = UINT64_MAX;
    for (struct as_watch *w = st->watchers; w; w = w->next)
        if (!w->dead && w->last_rv < st->rv && w->last_rv + 1 < min)
            min = w->last_rv + 1;
    return min;
}

static void as_hist_evict_oldest(struct as_store *st)
{
    struct as_hist *h = as_hist_at(st, 0);
    st->floor = h->rv;
    st->bytes -= h->bytes;
    as_hist_free(h);
    st->head = (st->head + 1) % st->cap;
    st->count--;
}

static int as_hist_grow(struct as_store *st)
{
    unsigned ncap = st->cap ? st->cap * 2 : 16;
    struct as_hist *n;
    if (ncap < st->cap)
        return -ENOMEM;
    n = calloc(ncap, sizeof *n);
    if (!n)
        return -ENOMEM;
    for (unsigned i = 0; i < st->count; i++)
        n[i] = *as_hist_at(st, i);
    free(st->ring);
    st->ring = n;
    st->cap = ncap;
    st->head = 0;
    return 0;
}

/* Appends an event (takes obj's reference and text). Evicts the oldest events past
 * the limits (count, and bytes counted as the objects' serialised length),
 * except those a watcher still waits for (inside a delivery round). When
 * the process is out of memory the history is emptied and its floor raised
 * so that watches from before get 410; watchers already running miss that
 * one event (there is no way to tell them). */
static void as_hist_append(struct as_store *st, enum as_event_type type, const char *gr,
                           const char *ns, const char *name, uint64_t rv, json_t *obj,
                           char *text)
{
    size_t bytes = text ? strlen(text) : 0;
    size_t lg = strlen(gr) + 1, ln = strlen(ns) + 1, lname = strlen(name) + 1;
    struct as_hist *h;
    char *key = malloc(lg + ln + lname);
    uint64_t pending = st->delivering ? as_min_pending(st) : UINT64_MAX;

    while (st->count && (st->count >= st->limit || st->bytes + bytes > st->bytes_limit)) {
        if (as_hist_at(st, 0)->rv >= pending)
            break;              /* still to be delivered: keep it */
        as_hist_evict_oldest(st);
    }
    if (!key || !text || !obj || (st->count == st->cap && as_hist_grow(st) != 0)) {
        mg_log(MG_LOG_ERROR, "store: out of memory for the watch history; watches restart",
               "rv", MG_U(rv));
        free(key);
        free(text);
        json_decref(obj);
        while (st->count)
            as_hist_evict_oldest(st);
        st->floor = rv;
        return;
    }
    h = as_hist_at(st, st->count);
    memcpy(key, gr, lg);
    memcpy(key + lg, ns, ln);
    memcpy(key + lg + ln, name, lname);
    h->type = type;
    h->rv = rv;
    h->key = key;
    h->ns = key + lg;
    h->name = key + lg + ln;
    h->obj = obj;
    h->text = text;
    h->bytes = bytes;
    st->count++;
    st->bytes += bytes;
}

/* Index of the first kept event with RV > rv (count when none). */
static unsigned as_hist_after(struct as_store *st, uint64_t rv)
{
    unsigned lo = 0, hi = st->count;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (as_hist_at(st, mid)->rv <= rv)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* --- watchers --------------------------------------------------------------- */

static void as_watch_free(struct as_watch *w)
{
    free(w->gr);
    free(w->ns);
    free(w);
}

static void as_watch_sweep(struct as_store *st)
{
    struct as_watch **pp = &st->watchers;
    while (*pp) {
        struct as_watch *w = *pp;
        if (w->dead) {
            *pp = w->next;
            as_watch_free(w);
        } else {
            pp = &w->next;
        }
    }
    st->need_sweep = 0;
}

static int as_watch_matches(const struct as_watch *w, const struct as_hist *h)
{
    return strcmp(w->gr, h->key) == 0 && (!w->ns || strcmp(w->ns, h->ns) == 0);
}

/* Gives w every kept event after w->last_rv, in order. The ring may change
 * under the callbacks (writes append, and may grow it), so each step looks
 * the next event up again by RV. */
static void as_watch_catch_up(struct as_store *st, struct as_watch *w)
{
    while (!w->dead && w->last_rv < st->rv) {
        unsigned i = as_hist_after(st, w->last_rv);
        struct as_hist *h;
        struct as_event ev;
        if (i == st->count) {
            w->last_rv = st->rv;      /* history lost (out of memory): nothing to give */
            break;
        }
        h = as_hist_at(st, i);
        w->last_rv = h->rv;
        if (!as_watch_matches(w, h))
            continue;
        ev.type = h->type;
        ev.gr = h->key;
        ev.ns = h->ns;
        ev.name = h->name;
        ev.rv = h->rv;
        /* a reference of our own: the event outlives any eviction in the call */
        if (h->obj) {
            ev.obj = json_incref(h->obj);
        } else {
            ev.obj = json_loads(h->text, 0, NULL);
            if (!ev.obj) {
                /* only out of memory: end the watch rather than skip an event */
                mg_log(MG_LOG_ERROR, "store: cannot replay an event; ending the watch",
                       "rv", MG_U(h->rv));
                w->dead = 1;
                st->need_sweep = 1;
                break;
            }
        }
        if (w->cb(&ev, w->data) != 0) {
            w->dead = 1;
            st->need_sweep = 1;
        }
        json_decref(ev.obj);
    }
}

/* A delivery round: catches every watcher up, again and again while
 * callbacks write. Nested calls (a write inside a callback) leave the work
 * to the round already running. */
static void as_deliver_rounds(struct as_store *st)
{
    int again;
    st->delivering = 1;
    do {
        again = 0;
        for (struct as_watch *w = st->watchers; w; w = w->next) {
            if (w->dead || w->last_rv >= st->rv)
                continue;
            as_watch_catch_up(st, w);
            again = 1;
        }
    } while (again);
    st->delivering = 0;
}

static void as_deliver(struct as_store *st)
{
    if (st->delivering)
        return;
    as_deliver_rounds(st);
    as_hist_drop_objs(st);
    if (st->need_sweep)
        as_watch_sweep(st);
}

/* --- open / close --------------------------------------------------------- */

static int as_lock_dir(struct as_store *st, const char *dir, const char **err)
{
    static __thread char msg[1024];
    char path[PATH_MAX], pid[32];
    int fd, n;
    n = snprintf(path, sizeof path, "%s/modelgate.lock", dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        *err = "data directory path too long";
        return -ENAMETOOLONG;
    }
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        int e = errno;
        snprintf(msg, sizeof msg, "cannot open %.400s: %s", path, strerror(e));
        *err = msg;
        return -e;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        int e = errno;
        ssize_t r = pread(fd, pid, sizeof pid - 1, 0);
        pid[r > 0 ? r : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(msg, sizeof msg,
                     "data directory %.400s is in use by another process (pid %.20s); "
                     "stop it or use another --data directory", dir, *pid ? pid : "unknown");
        else
            snprintf(msg, sizeof msg, "cannot lock %.400s: %s", path, strerror(e));
        *err = msg;
        close(fd);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == -1 || pwrite(fd, pid, (size_t)n, 0) != n) {
        /* Only informative (the message above); the lock is what counts. */
    }
    st->lock_fd = fd;
    return 0;
}

static int as_exec_sql(struct as_store *st, const char *sql, const char **err)
{
    static __thread char msg[1024];
    char *emsg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &emsg);
    if (rc != SQLITE_OK) {
        snprintf(msg, sizeof msg, "%s: %s (while running: %.80s)", st->path,
                 emsg ? emsg : sqlite3_errstr(rc), sql);
        *err = msg;
        sqlite3_free(emsg);
        return as_sqlite_errno(rc);
    }
    return 0;
}

static int as_load_meta(struct as_store *st, const char **err)
{
    static __thread char msg[1024];
    sqlite3_stmt *s = NULL;
    int rc, ret = 0;
    rc = sqlite3_prepare_v2(st->db, "SELECT k, v FROM meta", -1, &s, NULL);
    if (rc != SQLITE_OK)
        goto db_err;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(s, 0);
        sqlite3_int64 v = sqlite3_column_int64(s, 1);
        if (!k)
            continue;
        if (strcmp(k, "schema") == 0 && v != AS_SCHEMA_VERSION) {
            snprintf(msg, sizeof msg, "%s: schema version %lld, this modelgate-apiserver "
                     "reads version %d", st->path, (long long)v, AS_SCHEMA_VERSION);
            *err = msg;
            ret = -EPROTO;
            goto out;
        }
        if (strcmp(k, "rv") == 0) {
            if (sqlite3_column_type(s, 1) != SQLITE_INTEGER || v < 0) {
                snprintf(msg, sizeof msg, "%s: the stored resourceVersion is not a "
                         "non-negative integer", st->path);
                *err = msg;
                ret = -EPROTO;
                goto out;
            }
            st->rv = (uint64_t)v;
        }
    }
    if (rc != SQLITE_DONE)
        goto db_err;
    goto out;
db_err:
    snprintf(msg, sizeof msg, "%s: %s", st->path, sqlite3_errmsg(st->db));
    *err = msg;
    ret = as_sqlite_errno(rc);
out:
    sqlite3_finalize(s);
    return ret;
}

static int as_store_open_flags(const char *dir, unsigned history, int flags,
                               struct as_store **out, const char **err)
{
    static __thread char msg[1024];
    struct as_store *st;
    int rc, ret;
    size_t n;
    *out = NULL;
    *err = NULL;
    if (!dir || !*dir) {
        *err = "no data directory given";
        return -EINVAL;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        *err = "out of memory";
        return -ENOMEM;
    }
    st->lock_fd = -1;
    st->limit = history ? history : AS_STORE_HISTORY_DEFAULT;
    st->bytes_limit = AS_STORE_HISTORY_BYTES;
    n = strlen(dir) + sizeof "/modelgate.db";
    st->path = malloc(n);
    if (!st->path) {
        *err = "out of memory";
        ret = -ENOMEM;
        goto fail;
    }
    snprintf(st->path, n, "%s/modelgate.db", dir);
    /* A missing data directory is created (its parent must exist). */
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        int e = errno;
        snprintf(msg, sizeof msg, "cannot create data directory %.400s: %s", dir, strerror(e));
        *err = msg;
        ret = -e;
        goto fail;
    }
    if (!(flags & AS_OPEN_NOLOCK) && (ret = as_lock_dir(st, dir, err)) != 0)
        goto fail;

    /* Secrets are stored here: the file is created private (sqlite would
     * use 0644), and sqlite gives the -wal and -shm files the same mode.
     * This runs before sqlite opens the file, so closing this descriptor
     * cannot drop any of sqlite's POSIX locks. */
    {
        int fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd == -1) {
            int e = errno;
            snprintf(msg, sizeof msg, "cannot open %s: %s", st->path, strerror(e));
            *err = msg;
            ret = -e;
            goto fail;
        }
        close(fd);
    }
    rc = sqlite3_open_v2(st->path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(msg, sizeof msg, "cannot open %s: %s", st->path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        *err = msg;
        ret = as_sqlite_errno(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(st->db, 0);
    sqlite3_busy_timeout(st->db, AS_BUSY_TIMEOUT_MS);
    /* journal_mode answers with a row: check that WAL was really taken (it
     * is refused on some filesystems, and we promise WAL's behaviour). */
    {
        sqlite3_stmt *s = NULL;
        const char *mode;
        rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(s);
        mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : NULL;
        if (!mode || strcmp(mode, "wal") != 0) {
            snprintf(msg, sizeof msg, "%s: cannot open it as an sqlite database in WAL mode: %s", st->path,
                     mode ? mode : sqlite3_errmsg(st->db));
            *err = msg;
            sqlite3_finalize(s);
            ret = rc == SQLITE_ROW ? -ENOTSUP : as_sqlite_errno(rc);
            goto fail;
        }
        sqlite3_finalize(s);
    }
    /* The table keeps its rowid: objects are large rows (kilobytes, a CRD
     * can be hundreds), and a WITHOUT ROWID b-tree would carry them in its
     * interior pages; the primary key is then an index of small keys.
     * journal_size_limit: after a burst of writes the WAL is truncated back
     * at the next checkpoint instead of keeping its peak size. */
    if ((ret = as_exec_sql(st, "PRAGMA synchronous=NORMAL", err)) != 0 ||
        (ret = as_exec_sql(st, "PRAGMA journal_size_limit=67108864", err)) != 0 ||
        (ret = as_exec_sql(st, "PRAGMA foreign_keys=OFF", err)) != 0 ||
        (ret = as_exec_sql(st,
                           "BEGIN IMMEDIATE;"
                           "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);"
                           "CREATE TABLE IF NOT EXISTS objects (gr TEXT NOT NULL, ns TEXT NOT NULL,"
                           " name TEXT NOT NULL, rv INTEGER NOT NULL, data TEXT NOT NULL,"
                           " PRIMARY KEY (gr, ns, name));"
                           "INSERT OR IGNORE INTO meta (k, v) VALUES ('schema', 1);"
                           "INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 0);"
                           "COMMIT;", err)) != 0) {
        sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
        goto fail;
    }
    if ((ret = as_load_meta(st, err)) != 0)
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        rc = sqlite3_prepare_v3(st->db, as_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &st->stmt[i], NULL);
        if (rc != SQLITE_OK) {
            snprintf(msg, sizeof msg, "%s: %s", st->path, sqlite3_errmsg(st->db));
            *err = msg;
            ret = as_sqlite_errno(rc);
            goto fail;
        }
    }
    st->floor = st->rv;
    *out = st;
    return 0;
fail:
    as_store_close(st);
    return ret;
}

int as_store_open(const char *dir, unsigned history, struct as_store **out, const char **err)
{
    return as_store_open_flags(dir, history, 0, out, err);
}

int as_store_set_sync(struct as_store *st, int full)
{
    const char *err = NULL;
    int ret = as_exec_sql(st, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                          &err);
    if (ret)
        mg_log(MG_LOG_ERROR, "store: cannot set synchronous", "error", MG_S(err));
    return ret;
}

void as_store_close(struct as_store *st)
{
    if (!st)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(st->stmt[i]);
    if (st->db) {
        /* Fold the WAL back into the main file so that a copied data
         * directory is one self-contained file. */
        sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close_v2(st->db);
    }
    while (st->count)
        as_hist_evict_oldest(st);
    free(st->ring);
    for (struct as_watch *w = st->watchers, *next; w; w = next) {
        next = w->next;
        as_watch_free(w);
    }
    if (st->lock_fd != -1)
        close(st->lock_fd);
    free(st->path);
    free(st);
}

uint64_t as_store_rv(const struct as_store *st)
{
    return st->rv;
}

/* --- reads ------------------------------------------------------------------ */

int as_store_get(struct as_store *st, const char *gr, const char *ns, const char *name,
                 json_t **out)
{
    sqlite3_stmt *s;
    int rc, ret;
    *out = NULL;
    if (!ns)
        ns = "";
    if (!as_key_ok(gr, name))
        return -EINVAL;
    s = as_stmt(st, S_OBJ_GET);
    as_bind_key(s, gr, ns, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else if (rc == SQLITE_ROW) {
        ret = as_row_parse(st, gr, ns, name, sqlite3_column_text(s, 1), sqlite3_column_bytes(s, 1),
                           (uint64_t)sqlite3_column_int64(s, 0), out);
    } else {
        ret = as_db_fail(st, "get", rc);
    }
    sqlite3_reset(s);
    return ret;
}

/* --- writes ----------------------------------------------------------------- */

/* Inside a transaction: the next RV. The stored counter is read again (not
 * only our copy) so that the counter can never go backwards or repeat. */
static int as_next_rv(struct as_store *st, uint64_t *rv)
{
    sqlite3_stmt *s = as_stmt(st, S_META_RV);
    int rc = sqlite3_step(s);
    uint64_t cur;
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? -EIO : as_db_fail(st, "read resourceVersion", rc);
    }
    cur = (uint64_t)sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    if (cur < st->rv)
        cur = st->rv;
    if (cur >= (uint64_t)INT64_MAX)
        return -EOVERFLOW;
    *rv = cur + 1;
    return 0;
}

/* Inside a transaction: the stored object's RV; -ENOENT. */
static int as_stored_rv(struct as_store *st, const char *gr, const char *ns, const char *name,
                        uint64_t *rv, json_t **obj)
{
    sqlite3_stmt *s = as_stmt(st, S_OBJ_GET);
    int rc, ret = 0;
    as_bind_key(s, gr, ns, name);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *rv = (uint64_t)sqlite3_column_int64(s, 0);
        if (obj)
            ret = as_row_parse(st, gr, ns, name, sqlite3_column_text(s, 1),
                               sqlite3_column_bytes(s, 1), *rv, obj);
    } else if (rc == SQLITE_DONE) {
        ret = -ENOENT;
    } else {
        ret = as_db_fail(st, "read object", rc);
    }
    sqlite3_reset(s);
    return ret;
}

static int as_write_row(struct as_store *st, enum as_stmt_id id, const char *gr, const char *ns,
                        const char *name, uint64_t rv, const char *text, size_t len)
{
    sqlite3_stmt *s = as_stmt(st, id);
    int rc;
    as_bind_key(s, gr, ns, name);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)rv);
    if (text)
        sqlite3_bind_text64(s, 5, text, len, SQLITE_STATIC, SQLITE_UTF8);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return as_db_fail(st, id == S_OBJ_DELETE ? "delete" : "write object", rc);
    if (sqlite3_changes(st->db) != 1)
        return -EIO;
    return 0;
}

static int as_set_meta_rv(struct as_store *st, uint64_t rv)
{
    sqlite3_stmt *s = as_stmt(st, S_META_SET_RV);
    int rc;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)rv);
    rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE)
        return as_db_fail(st, "write resourceVersion", rc);
    return 0;
}

static int as_begin(struct as_store *st)
{
    return as_exec1(st, S_BEGIN, "begin");
}

static void as_rollback(struct as_store *st)
{
    if (!sqlite3_get_autocommit(st->db))
        as_exec1(st, S_ROLLBACK, "rollback");
}

/* COMMIT; on failure the transaction is rolled back (sqlite may leave it
 * open after a failed COMMIT). */
static int as_commit(struct as_store *st)
{
    int ret = as_exec1(st, S_COMMIT, "commit");
    if (ret)
        as_rollback(st);
    return ret;
}

/* Saves metadata.resourceVersion (a new reference or NULL) to put back when
 * a write fails after stamping the caller's object. */
static json_t *as_saved_rv(json_t *obj)
{
    return json_incref(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

static void as_restore_rv(json_t *obj, json_t *saved)
{
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md))
        return;
    if (saved)
        json_object_set(md, "resourceVersion", saved);
    else
        json_object_del(md, "resourceVersion");
}

/* create and update: one transaction. */
static int as_put(struct as_store *st, int create, const char *gr, const char *ns,
                  const char *name, json_t *obj, uint64_t expect_rv)
{
    json_t *saved = NULL, *copy = NULL;
    char *text = NULL;
    uint64_t rv = 0, cur = 0;
    size_t len;
    int ret;
    if (!ns)
        ns = "";
    if (!as_key_ok(gr, name) || !json_is_object(obj))
        return -EINVAL;
    if (json_object_get(obj, "metadata") && !json_is_object(json_object_get(obj, "metadata")))
        return -EINVAL;
    if ((ret = as_begin(st)) != 0)
        return ret;
    ret = as_stored_rv(st, gr, ns, name, &cur, NULL);
    if (create) {
        if (ret == 0)
            ret = -EEXIST;
        else if (ret == -ENOENT)
            ret = 0;
    } else if (ret == 0 && expect_rv && cur != expect_rv) {
        ret = -ESTALE;
    }
    if (ret || (ret = as_next_rv(st, &rv)) != 0)
        goto rollback;
    saved = as_saved_rv(obj);
    if ((ret = as_stamp_rv(obj, rv)) != 0)
        goto rollback;
    text = json_dumps(obj, JSON_COMPACT);
    copy = json_deep_copy(obj);
    if (!text || !copy) {
        ret = -ENOMEM;
        goto rollback;
    }
    len = strlen(text);
    if ((ret = as_write_row(st, create ? S_OBJ_INSERT : S_OBJ_UPDATE, gr, ns, name, rv, text,
                            len)) != 0 ||
        (ret = as_set_meta_rv(st, rv)) != 0 || (ret = as_commit(st)) != 0)
        goto rollback;
    json_decref(saved);
    st->rv = rv;
    as_hist_append(st, create ? AS_ADDED : AS_MODIFIED, gr, ns, name, rv, copy, text);
    as_deliver(st);
    return 0;
rollback:
    as_rollback(st);
    if (rv)
        as_restore_rv(obj, saved);
    json_decref(saved);
    json_decref(copy);
    free(text);
    return ret;
}

int as_store_create(struct as_store *st, const char *gr, const char *ns, const char *name,
                    json_t *obj)
{
    return as_put(st, 1, gr, ns, name, obj, 0);
}

int as_store_update(struct as_store *st, const char *gr, const char *ns, const char *name,
                    json_t *obj, uint64_t expect_rv)
{
    return as_put(st, 0, gr, ns, name, obj, expect_rv);
}

int as_store_delete(struct as_store *st, const char *gr, const char *ns, const char *name,
                    uint64_t expect_rv, json_t **old)
{
    json_t *obj = NULL, *copy = NULL;
    uint64_t rv = 0, cur = 0;
    int ret;
    if (old)
        *old = NULL;
    if (!ns)
        ns = "";
    if (!as_key_ok(gr, name))
        return -EINVAL;
    if ((ret = as_begin(st)) != 0)
        return ret;
    ret = as_stored_rv(st, gr, ns, name, &cur, &obj);
    if (ret == -EIO && cur) {
        /* A damaged row can still be deleted (that is how it is repaired);
         * watchers get a bare object naming it. */
        obj = json_pack("{s:{s:s,s:s}}", "metadata", "name", name, "namespace", ns);
        ret = obj ? 0 : -ENOMEM;
    }
    if (ret == 0 && expect_rv && cur != expect_rv)
        ret = -ESTALE;
    if (ret || (ret = as_next_rv(st, &rv)) != 0)
        goto rollback;
    if ((ret = as_stamp_rv(obj, rv)) != 0)
        goto rollback;
    copy = json_deep_copy(obj);
    if (!copy) {
        ret = -ENOMEM;
        goto rollback;
    }
    if ((ret = as_write_row(st, S_OBJ_DELETE, gr, ns, name, 0, NULL, 0)) != 0 ||
        (ret = as_set_meta_rv(st, rv)) != 0 || (ret = as_commit(st)) != 0)
        goto rollback;
    st->rv = rv;
    as_hist_append(st, AS_DELETED, gr, ns, name, rv, copy, json_dumps(copy, JSON_COMPACT));
    if (old)
        *old = obj;
    else
        json_decref(obj);
    as_deliver(st);
    return 0;
rollback:
    as_rollback(st);
    json_decref(obj);
    json_decref(copy);
    return ret;
}

/* --- list ------------------------------------------------------------------- */

static const char as_b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *as_b64url_encode(const char *in, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1), *p = out;
    size_t i;
    if (!out)
        return NULL;
    for (i = 0; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16 | (uint32_t)(unsigned char)in[i + 1] << 8 |
                     (unsigned char)in[i + 2];
        *p++ = as_b64url[v >> 18];
        *p++ = as_b64url[(v >> 12) & 63];
        *p++ = as_b64url[(v >> 6) & 63];
        *p++ = as_b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        *p++ = as_b64url[v >> 18];
        *p++ = as_b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16 | (uint32_t)(unsigned char)in[i + 1] << 8;
        *p++ = as_b64url[v >> 18];
        *p++ = as_b64url[(v >> 12) & 63];
        *p++ = as_b64url[(v >> 6) & 63];
    }
    *p = '\0';
    return out;
}

static int as_b64url_val(char c)
{
    const char *p = c ? strchr(as_b64url, c) : NULL;
    return p ? (int)(p - as_b64url) : -1;
}

/* Strict: unpadded base64url only, no stray bits. *len: decoded length. */
static int as_b64url_decode(const char *in, char *out, size_t cap, size_t *len)
{
    size_t n = strlen(in), o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (n % 4 == 1)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int v = as_b64url_val(in[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -EINVAL;
            out[o++] = (char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return -EINVAL;
    *len = o;
    return 0;
}

/* The continue token: base64url of {"rv":N,"gr":..,"ns":..,"name":..}, the
 * last key given out and the RV of the list's first page. */
static char *as_cont_make(const char *gr, const char *ns, const char *name, uint64_t rv)
{
    json_t *j = json_pack("{s:I,s:s,s:s,s:s}", "rv", (json_int_t)rv, "gr", gr, "ns", ns,
                          "name", name);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL, *tok = NULL;
    if (text)
        tok = as_b64url_encode(text, strlen(text));
    free(text);
    json_decref(j);
    return tok;
}

/* Decodes a continue token for gr (and ns, when the list is in one). *j
 * keeps the strings *ns and *name alive. */
static int as_cont_parse(const char *tok, const char *gr, const char *want_ns, json_t **j,
                         const char **ns, const char **name, uint64_t *rv)
{
    char buf[AS_CONT_MAX];
    size_t len = 0;
    json_t *root, *v;
    const char *tgr;
    *j = NULL;
    if (strlen(tok) > AS_CONT_MAX || as_b64url_decode(tok, buf, sizeof buf, &len) != 0)
        return -EINVAL;
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root) || json_object_size(root) != 4)
        goto bad;
    v = json_object_get(root, "rv");
    tgr = json_string_value(json_object_get(root, "gr"));
    *ns = json_string_value(json_object_get(root, "ns"));
    *name = json_string_value(json_object_get(root, "name"));
    if (!json_is_integer(v) || json_integer_value(v) < 0 || !tgr || !*ns || !*name || !**name)
        goto bad;
    if (strcmp(tgr, gr) != 0 || (want_ns && strcmp(want_ns, *ns) != 0))
        goto bad;
    *rv = (uint64_t)json_integer_value(v);
    *j = root;
    return 0;
bad:
    json_decref(root);
    return -EINVAL;
}

/* A fetched row; its JSON is parsed only when it is given out, so the row
 * read past a full page (to know whether a token is needed) costs no
 * parse, and a damaged row there does not fail the page before it. */
struct as_list_row {
    char *ns, *name, *text;
    size_t len;
    uint64_t rv;
};

int as_store_list(struct as_store *st, const char *gr, const char *ns, const char *cont,
                  unsigned limit, as_list_cb cb, void *data, uint64_t *rv, char **next)
{
    struct as_list_row rows[AS_LIST_BATCH];
    json_t *tokj = NULL;
    char *after_ns = NULL, *after_name = NULL;
    uint64_t list_rv = st->rv;
    unsigned accepted = 0, nrows = 0, i = 0;
    int ret = 0, done = 0, more = 0;
    *next = NULL;
    *rv = st->rv;
    if (!gr || !*gr)
        return -EINVAL;
    if (cont && *cont) {
        const char *tns, *tname;
        ret = as_cont_parse(cont, gr, ns, &tokj, &tns, &tname, &list_rv);
        if (ret)
            return ret;
        if (list_rv > st->rv) {
            /* not from this store's history (forged, or the data directory
             * was restored from an older copy) */
            json_decref(tokj);
            return -EINVAL;
        }
        after_ns = strdup(tns);
        after_name = strdup(tname);
        json_decref(tokj);
        if (!after_ns || !after_name) {
            ret = -ENOMEM;
            goto out;
        }
    } else {
        after_ns = strdup("");
        after_name = strdup("");
        if (!after_ns || !after_name) {
            ret = -ENOMEM;
            goto out;
        }
    }

    while (!done) {
        sqlite3_stmt *s;
        unsigned want = AS_LIST_BATCH;
        int rc = SQLITE_DONE;
        /* A page needs at most its remaining room plus one row (to know
         * whether more follows; skipped rows make another batch). */
        if (limit && limit - accepted < AS_LIST_BATCH)
            want = limit - accepted + 1;
        /* Fetch a batch, then let go of the statement before any callback. */
        s = as_stmt(st, ns ? S_LIST_NS : S_LIST_ALL);
        sqlite3_bind_text(s, 1, gr, -1, SQLITE_STATIC);
        if (ns) {
            sqlite3_bind_text(s, 2, ns, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 3, after_name, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_text(s, 2, after_ns, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 3, after_name, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int(s, 4, (int)want);
        nrows = 0;
        while (nrows < want && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            struct as_list_row *r = &rows[nrows];
            const char *rns = (const char *)sqlite3_column_text(s, 0);
            const char *rname = (const char *)sqlite3_column_text(s, 1);
            const void *text = sqlite3_column_text(s, 3);
            int len = sqlite3_column_bytes(s, 3);
            r->ns = strdup(rns ? rns : "");
            r->name = strdup(rname ? rname : "");
            r->len = len > 0 ? (size_t)len : 0;
            r->text = malloc(r->len + 1);
            r->rv = (uint64_t)sqlite3_column_int64(s, 2);
            nrows++;
            if (!r->ns || !r->name || !r->text) {
                ret = -ENOMEM;
                break;
            }
            if (r->len)
                memcpy(r->text, text, r->len);
            r->text[r->len] = '\0';
        }
        if (nrows == want)
            rc = SQLITE_DONE;   /* LIMIT reached: the statement has no more rows to give */
        sqlite3_reset(s);
        if (!ret && rc != SQLITE_DONE)
            ret = as_db_fail(st, "list", rc);
        if (ret)
            goto free_rows;
        if (nrows < want)
            done = 1;
        for (i = 0; i < nrows; i++) {
            json_t *obj = NULL;
            int r;
            if (limit && accepted == limit) {
                more = 1;       /* a row past the last one given out */
                done = 1;
                break;
            }
            ret = as_row_parse(st, gr, rows[i].ns, rows[i].name,
                               (const unsigned char *)rows[i].text, (int)rows[i].len, rows[i].rv,
                               &obj);
            if (ret)
                break;
            r = cb(obj, data);
            json_decref(obj);
            free(after_ns);
            free(after_name);
            after_ns = rows[i].ns;
            after_name = rows[i].name;
            rows[i].ns = rows[i].name = NULL;
            if (r < 0) {
                done = 1;
                break;
            }
            if (r == 0)
                accepted++;
        }
        /* A page that fills up on a batch's last row: whether more
         * follows is known from the next batch (its first row, or none). */
free_rows:
        for (unsigned k = 0; k < nrows; k++) {
            free(rows[k].ns);
            free(rows[k].name);
            free(rows[k].text);
        }
        if (ret)
            goto out;
    }
    if (more) {
        *next = as_cont_make(gr, after_ns, after_name, list_rv);
        if (!*next)
            ret = -ENOMEM;
    }
    *rv = list_rv;
out:
    free(after_ns);
    free(after_name);
    return ret;
}

int as_store_each_gr(struct as_store *st, void (*cb)(const char *gr, void *data), void *data)
{
    char *last = strdup("");
    int ret = 0;
    if (!last)
        return -ENOMEM;
    for (;;) {
        sqlite3_stmt *s = as_stmt(st, S_NEXT_GR);
        const char *gr;
        int rc;
        char *copy;
        sqlite3_bind_text(s, 1, last, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_DONE) {
            sqlite3_reset(s);
            break;
        }
        if (rc != SQLITE_ROW) {
            sqlite3_reset(s);
            ret = as_db_fail(st, "list resource types", rc);
            break;
        }
        gr = (const char *)sqlite3_column_text(s, 0);
        copy = strdup(gr ? gr : "");
        sqlite3_reset(s);
        if (!copy) {
            ret = -ENOMEM;
            break;
        }
        free(last);
        last = copy;
        cb(last, data);
    }
    free(last);
    return ret;
}

/* --- watch ------------------------------------------------------------------ */

int as_store_watch(struct as_store *st, const char *gr, const char *ns, uint64_t since_rv,
                   as_watch_cb cb, void *data, struct as_watch **out)
{
    struct as_watch *w, **pp;
    *out = NULL;
    if (!gr || !*gr || !cb)
        return -EINVAL;
    if (since_rv == 0)
        since_rv = st->rv;
    if (since_rv < st->floor)
        return -ESTALE;
    if (since_rv > st->rv)
        return -ERANGE;
    w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->gr = strdup(gr);
    w->ns = ns ? strdup(ns) : NULL;
    if (!w->gr || (ns && !w->ns)) {
        as_watch_free(w);
        return -ENOMEM;
    }
    w->cb = cb;
    w->data = data;
    w->last_rv = since_rv;
    for (pp = &st->watchers; *pp; pp = &(*pp)->next)
        ;
    *pp = w;
    /* The replay: a round of its own, or (inside a callback) the running
     * one, later. w is looked at before the sweep that may free it. */
    if (st->delivering) {
        *out = w;
        return 0;
    }
    as_deliver_rounds(st);
    as_hist_drop_objs(st);
    if (!w->dead)
        *out = w;       /* else stopped by its callback during the replay: NULL */
    if (st->need_sweep)
        as_watch_sweep(st);
    return 0;
}

void as_store_unwatch(struct as_store *st, struct as_watch *w)
{
    struct as_watch **pp;
    if (!w)
        return;
    if (st->delivering) {
        w->dead = 1;
        st->need_sweep = 1;
        return;
    }
    for (pp = &st->watchers; *pp; pp = &(*pp)->next) {
        if (*pp == w) {
            *pp = w->next;
            as_watch_free(w);
            return;
        }
    }
}
