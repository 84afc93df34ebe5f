/* Admission, like vLLM's scheduler seen from outside: at most max_running
 * requests generate at once across the whole process (one "engine", however
 * many worker threads serve HTTP); the others wait in FIFO order and are
 * visible as vllm:num_requests_waiting. Their time to first token grows by
 * the time they waited, because the TTFT timer starts at admission.
 *
 * Each worker queues its own requests (they live on its loop); a slot freed
 * on one worker wakes the others through mg_loop_post, at most one post in
 * flight per worker. */
#include "tests/modelsim/modelsim.h"
#include "tests/modelsim/req.h"

static int try_acquire(void)
{
    uint32_t max = atomic_load_explicit(&ms_g.max_running, memory_order_relaxed);
    if (max == 0) {
        atomic_fetch_add(&ms_g.running, 1);
        return 1;
    }
    int64_t cur = atomic_load(&ms_g.running);
    while (cur < (int64_t)max)
        if (atomic_compare_exchange_weak(&ms_g.running, &cur, cur + 1))
            return 1;
    return 0;
}

static void admit_waiters(struct ms_worker *w)
{
    /* During shutdown the servers are being freed: a waiter admitted now
     * would start a reply on a closing connection. */
    if (atomic_load_explicit(&ms_g.stopping, memory_order_relaxed))
        return;
    while (w->wait_head && try_acquire()) {
        struct ms_req *r = w->wait_head;
        ms_sched_unqueue(w, r);
        ms_req_admitted(r);
    }
}

static void kick_cb(struct mg_loop *loop, void *data)
{
    struct ms_worker *w = data;
    atomic_store(&w->kick_posted, 0);
    admit_waiters(w);
}

static void kick(struct ms_worker *w)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&w->kick_posted, &expected, 1))
        return;
    if (mg_loop_post(w->loop, kick_cb, w) < 0)
        atomic_store(&w->kick_posted, 0);
}

int ms_sched_submit(struct ms_worker *w, struct ms_req *req)
{
    /* FIFO: a newcomer does not overtake requests already waiting here. */
    if (!w->wait_head && try_acquire())
        return 1;
    req->qprev = w->wait_tail;
    req->qnext = NULL;
    if (w->wait_tail)
        w->wait_tail->qnext = req;
    else
        w->wait_head = req;
    w->wait_tail = req;
    req->queued = 1;
    atomic_fetch_add(&w->wait_len, 1);
    atomic_fetch_add(&ms_g.waiting, 1);
    if (req->model)
        atomic_fetch_add(&req->model->waiting, 1);
    /* A slot may have freed between the failed acquire and the enqueue. */
    admit_waiters(w);
    return 0;
}

void ms_sched_unqueue(struct ms_worker *w, struct ms_req *req)
{
    if (!req->queued)
        return;
    if (req->qprev)
        req->qprev->qnext = req->qnext;
    else
        w->wait_head = req->qnext;
    if (req->qnext)
        req->qnext->qprev = req->qprev;
    else
        w->wait_tail = req->qprev;
    req->qprev = req->qnext = NULL;
    req->queued = 0;
    atomic_fetch_sub(&w->wait_len, 1);
    atomic_fetch_sub(&ms_g.waiting, 1);
    if (req->model)
        atomic_fetch_sub(&req->model->waiting, 1);
}

void ms_sched_release(struct ms_worker *w)
{
    atomic_fetch_sub(&ms_g.running, 1);
    admit_waiters(w);
    if (atomic_load_explicit(&ms_g.waiting, memory_order_relaxed) == 0)
        return;
    for (unsigned i = 0; i < ms_g.nworkers; i++) {
        struct ms_worker *o = &ms_g.workers[i];
        if (o != w && atomic_load_explicit(&o->wait_len, memory_order_relaxed) > 0)
            kick(o);
    }
}

void ms_sched_kick_all(void)
{
    for (unsigned i = 0; i < ms_g.nworkers; i++)
        if (ms_g.workers[i].loop)
            kick(&ms_g.workers[i]);
}
