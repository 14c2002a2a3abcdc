/*
 * job.c — store jobs bound to a request: operator writes (realm tokens, disconnects,
 * redrives, backfills, CDC requests) and health probes.
 *
 * A job is queued for the store's writer and answered when it comes back, on the loop
 * thread, by the endpoint file that made it (api_job_t.answer). The request may be gone
 * by then (the client hung up): the guard, which lives in the request's pool, tells the
 * job, and the answer is dropped.
 */
#include <stdlib.h>
#include "api_internal.h"

static void on_guard_dispose(void *p)
{
    req_guard_t *g = p;
    if (g->job != NULL)
        g->job->guard = NULL; /* the connection went away: answer nobody */
}

/* store writer thread: hand the finished job back to the loop (must not block) */
static void job_done_in_store(qbc_store_job_t *sj)
{
    api_job_t *j = sj->data;
    h2o_multithread_send_message(&j->api->commits, &j->msg);
}

void qbc_api__job_init(api_job_t *j, qbc_api_t *api, h2o_req_t *req, qbc_store_job_t *sj,
                       void (*answer)(api_job_t *, h2o_req_t *), void (*dispose)(api_job_t *))
{
    j->api = api;
    j->answer = answer;
    j->dispose = dispose;
    sj->on_commit = job_done_in_store;
    sj->data = j;
    j->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*j->guard), on_guard_dispose);
    j->guard->req = req;
    j->guard->job = j;
}

void qbc_api__job_free(api_job_t *j)
{
    if (j->guard != NULL)
        j->guard->job = NULL;
    j->dispose(j);
}

int qbc_api__job_submitted(api_job_t *j, int rc)
{
    if (rc == 0) {
        j->api->inflight++;
        return 0;
    }
    h2o_req_t *req = j->guard != NULL ? j->guard->req : NULL;
    qbc_api__job_free(j);
    if (req != NULL)
        qbc_api__respond_error(req, 503, "Service Unavailable",
                               rc == QBC_ECLOSED ? "shutting_down" : "store_unavailable",
                               rc == QBC_ECLOSED ? "the service is stopping; retry later" : "retry later");
    return rc;
}

/* loop thread: every finished job arrives here and goes to the file that made it */
static void on_commit_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    for (h2o_multithread_message_t *m; (m = qbc_api__take_message(messages)) != NULL;) {
        api_job_t *j = H2O_STRUCT_FROM_MEMBER(api_job_t, msg, m);
        j->api->inflight--;
        j->answer(j, j->guard != NULL ? j->guard->req : NULL);
        qbc_api__job_free(j);
    }
}

void qbc_api__jobs_init(qbc_api_t *api)
{
    h2o_multithread_register_receiver(api->ctx.queue, &api->commits, on_commit_messages);
}

void qbc_api__jobs_dispose(qbc_api_t *api)
{
    h2o_multithread_unregister_receiver(api->ctx.queue, &api->commits);
}
