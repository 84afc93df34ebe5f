/* Durable object storage on sqlite3 (WAL), with one global resourceVersion
 * and a bounded in-memory history of changes that serves watches. Think of
 * k3s's kine, in-process.
 *
 * Objects are JSON documents keyed by (gr, ns, name): gr is "group/resource"
 * ("/pods" for core, "apps/deployments", "modelgate.dev/modeldeployments"),
 * ns is "" for cluster-scoped objects. Every write bumps the global counter
 * and stamps it into the object's metadata.resourceVersion (a decimal
 * string) before it is stored; a write returns only after its sqlite
 * transaction committed, so a kill -9 after the reply loses nothing, and
 * the counter keeps rising across restarts (it is stored, not derived).
 *
 * Single-threaded: the apiserver's loop thread owns the store. Calls block
 * on sqlite (local disk; each write is one short transaction).
 *
 * Watches: every committed write appends an event (ADDED, MODIFIED,
 * DELETED with the object's last state, stamped with the new RV) to a ring
 * of the last `history` events, and is delivered synchronously to matching
 * watchers before the write call returns. A watch from RV N replays the
 * kept events with RV > N first; when N is older than the ring can prove
 * complete (N < oldest kept RV - 1, or N older than the RV at start-up), it
 * is -ESTALE (the caller sends 410 Expired). */
#ifndef AS_STORE_H
#define AS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct as_store;
struct as_watch;

enum as_event_type { AS_ADDED = 1, AS_MODIFIED, AS_DELETED };

struct as_event {
    enum as_event_type type;
    const char *gr, *ns, *name;
    uint64_t rv;
    json_t *obj;        /* borrowed for the call; json_incref to keep */
};

/* Called for each event of a watch; return nonzero to stop the watch (it is
 * then freed by the store after the call: do not call as_store_unwatch).
 * ev->obj may be shared with other watchers: never modify it.
 * A callback may call as_store_unwatch (on its own watch or another), start
 * watches and write; events caused by such a write are delivered, in RV
 * order, by the delivery already running, before the outer write returns.
 * It must not call as_store_close. */
typedef int (*as_watch_cb)(const struct as_event *ev, void *data);

/* Opens (creating) DIR/modelgate.db. history: events kept for watches
 * (0: 10000; the ring also keeps at most 64 MiB of serialised objects).
 * 0 or -errno; *err gets a message for people. -EBUSY when another process
 * has DIR open (an flock on DIR/modelgate.lock): the watch history is in
 * this process, so one data directory has one server. DIR is created when
 * missing (not its parents); the files are private (0600).
 * as_store_close ends the watches still open (their handles become
 * invalid) and folds the WAL into the main file. */
int as_store_open(const char *dir, unsigned history, struct as_store **out, const char **err);
void as_store_close(struct as_store *st);

/* Durability of a commit (extension). Default (full = 0): sqlite
 * synchronous=NORMAL in WAL mode; an acknowledged write survives the death
 * of the process (kill -9, crash) but the last ones may be lost on power
 * loss or a kernel crash. full = 1: synchronous=FULL, one fsync per write,
 * which survives those too. 0 or -errno. */
int as_store_set_sync(struct as_store *st, int full);

/* The current resourceVersion (the last committed write's). */
uint64_t as_store_rv(const struct as_store *st);

/* *out: a new reference. -ENOENT; -EIO: the stored row is damaged. */
int as_store_get(struct as_store *st, const char *gr, const char *ns, const char *name,
                 json_t **out);
/* Stores a new object (obj is modified: metadata.resourceVersion set; the
 * store keeps its own copy, so obj stays the caller's). -EEXIST when the
 * key exists; -EINVAL when obj is not an object, its metadata not one, or
 * gr or name is empty. A refused write leaves obj as it was. */
int as_store_create(struct as_store *st, const char *gr, const char *ns, const char *name,
                    json_t *obj);
/* Replaces an object. expect_rv != 0: -ESTALE unless the stored RV is
 * expect_rv (optimistic concurrency, 409 Conflict). -ENOENT. */
int as_store_update(struct as_store *st, const char *gr, const char *ns, const char *name,
                    json_t *obj, uint64_t expect_rv);
/* Deletes an object; *old (when not NULL) gets its last state, stamped with
 * the deletion's RV. expect_rv as for update. -ENOENT. */
int as_store_delete(struct as_store *st, const char *gr, const char *ns, const char *name,
                    uint64_t expect_rv, json_t **old);

/* Lists objects of gr in ns (NULL: every namespace) in key order (ns, name),
 * starting after the key named by cont (NULL: from the start; cont is what a
 * previous list returned in *next), calling cb for each until it returns
 * nonzero (filtering is the caller's: return 0 to skip) or limit objects
 * were accepted (cb returns 0 = accepted, 1 = skipped, -1 = stop; limit 0:
 * no limit). *rv gets the RV the list is consistent with; *next (caller
 * frees, NULL when the list is complete) the continue token.
 * -EINVAL for a malformed continue token (or one from another gr or ns).
 * cb gets a new object it may keep (json_incref) or change; it may call
 * back into the store.
 * A stop (-1) ends the list with 0 and no continue token.
 * Pages: each page reads the current data (not a snapshot taken at the
 * first page), in key order after the last key given out, so an object
 * appears at most once across pages; a continued list reports the first
 * page's RV as *rv (what Kubernetes does), so a watch from it replays what
 * changed meanwhile. -EIO when a stored object is not valid JSON (a
 * damaged or hand-edited row; logged with its key): such a row can still be
 * replaced by update or removed by delete. */
typedef int (*as_list_cb)(json_t *obj, void *data);
int as_store_list(struct as_store *st, const char *gr, const char *ns, const char *cont,
                  unsigned limit, as_list_cb cb, void *data, uint64_t *rv, char **next);

/* Starts a watch of gr in ns (NULL: all) from since_rv: replays kept events
 * after it (inside this call), then delivers new ones as they commit.
 * since_rv 0 means "from now" (the caller sends the current state as ADDED
 * itself, from a list). -ESTALE: too old (410). -ERANGE (extension): since_rv
 * is newer than the current RV (Kubernetes answers 504 "Too large resource
 * version"). When cb stops the watch during the replay, 0 with *out NULL. */
int as_store_watch(struct as_store *st, const char *gr, const char *ns, uint64_t since_rv,
                   as_watch_cb cb, void *data, struct as_watch **out);
void as_store_unwatch(struct as_store *st, struct as_watch *w);

/* Every gr with at least one stored object (for the garbage collector and
 * namespace deletion): calls cb(gr, data) for each. */
int as_store_each_gr(struct as_store *st, void (*cb)(const char *gr, void *data), void *data);

#endif
